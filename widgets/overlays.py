"""Map layers made from pixels: scene quicklooks, footprints, embedding images.

Every image is warped to Web Mercator before it becomes an ``ImageOverlay``, because
Leaflet stretches an overlay linearly between two corners in the map's projection;
an image on a UTM grid would otherwise sit slightly off its true position. Images
travel inside the page as ``data:`` PNG URLs, so no file server or network is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
from affine import Affine

from .extra import require
from .quicklook import image_data_url, rgb_band_indices, rgb_indices_or_first, robust_stretch

LonLatBounds = Tuple[float, float, float, float]

_WEB_MERCATOR = "EPSG:3857"


def warp_to_web_mercator(chw: np.ndarray, crs, transform, *, max_size: int = 1024,
                         min_size: int = 0, nearest: bool = False):
    """Reproject a ``(C, H, W)`` array on ``(crs, transform)`` to Web Mercator.

    Returns ``(array (C, h, w) float32 with NaN outside the source, lon/lat bounds)``.
    ``min_size`` upsamples small grids (embeddings) so each cell stays a crisp block.
    """
    from rasterio.transform import array_bounds
    from rasterio.warp import Resampling, calculate_default_transform, reproject, transform_bounds

    src = np.asarray(chw, dtype=np.float32)
    c, h, w = src.shape
    left, bottom, right, top = array_bounds(h, w, transform)
    dst_transform, dw, dh = calculate_default_transform(crs, _WEB_MERCATOR, w, h,
                                                        left, bottom, right, top)
    scale = 1.0
    if max(dw, dh) > max_size:
        scale = max(dw, dh) / max_size
    elif min_size and max(dw, dh) < min_size:
        scale = max(dw, dh) / min_size
    if scale != 1.0:
        dw, dh = max(1, int(round(dw / scale))), max(1, int(round(dh / scale)))
        dst_transform = _rescale(dst_transform, scale)
    dst = np.full((c, dh, dw), np.nan, dtype=np.float32)
    reproject(src, dst, src_transform=transform, src_crs=crs, dst_transform=dst_transform,
              dst_crs=_WEB_MERCATOR, src_nodata=np.nan, dst_nodata=np.nan,
              resampling=Resampling.nearest if nearest else Resampling.bilinear)
    l2, b2, r2, t2 = array_bounds(dh, dw, dst_transform)
    bounds = transform_bounds(_WEB_MERCATOR, "EPSG:4326", l2, b2, r2, t2)
    return dst, tuple(float(v) for v in bounds)


def _rescale(transform, factor: float):
    return transform @ Affine.scale(factor, factor)


def image_overlay(rgb_hw3: np.ndarray, bounds: LonLatBounds, *, name: str, opacity: float = 1.0,
                  fmt: str = "png"):
    """An ipyleaflet ``ImageOverlay`` of an ``(h, w, 3)`` image; NaN pixels are transparent."""
    L = require("ipyleaflet", "map overlays")
    valid = np.isfinite(rgb_hw3).all(axis=-1)
    minlon, minlat, maxlon, maxlat = bounds
    return L.ImageOverlay(url=image_data_url(np.nan_to_num(rgb_hw3), alpha=valid, fmt=fmt),
                          bounds=[[minlat, minlon], [maxlat, maxlon]], name=name, opacity=opacity)


def footprint_layer(ring_lonlat: Sequence[Tuple[float, float]], *, name: str, color: str = "#ffd400"):
    L = require("ipyleaflet", "map overlays")
    return L.Polygon(locations=[[lat, lon] for lon, lat in ring_lonlat], name=name, color=color,
                     weight=2, fill=False, dash_array="6 4")


def _raster_ring(crs, bounds) -> List[Tuple[float, float]]:
    """The raster's outline in lon/lat, densified (a UTM square is not a lon/lat box)."""
    from rasterio.warp import transform as warp_points

    left, bottom, right, top = bounds
    n = 16
    xs = [left + (right - left) * i / n for i in range(n)] + [right] * n + \
         [right - (right - left) * i / n for i in range(n)] + [left] * n
    ys = [bottom] * n + [bottom + (top - bottom) * i / n for i in range(n)] + \
         [top] * n + [top - (top - bottom) * i / n for i in range(n)]
    lons, lats = warp_points(crs, "EPSG:4326", xs, ys)
    ring = list(zip(lons, lats))
    return ring + [ring[0]]


def _rgb_sources(source, bands) -> List[Tuple[Path, int]]:
    """(file, 1-based band index) of the red, green and blue bands of ``source``."""
    import rasterio

    if isinstance(source, (str, Path)):  # one multi-band raster, bands found by name
        with rasterio.open(source) as ds:
            names = list(bands) if bands is not None else list(ds.descriptions or [])
            count = ds.count
        idx = rgb_indices_or_first(names, count)
        return [(Path(source), i + 1) for i in idx]
    items = list(source)
    if len(items) != 3:
        raise ValueError(f"give one multi-band raster or the (red, green, blue) files, got {len(items)} items")
    return [(Path(it[0]), int(it[1])) if isinstance(it, tuple) else (Path(it), 1) for it in items]


def _read_rgb(sources: List[Tuple[Path, int]], max_size: int):
    """(3, h, w) float array, valid mask, crs, transform, full bounds; read decimated."""
    import rasterio
    from rasterio.enums import Resampling

    with rasterio.open(sources[0][0]) as ref:
        crs, bounds = ref.crs, ref.bounds
        step = max(1.0, max(ref.width, ref.height) / max_size)
        out_h, out_w = max(1, int(ref.height / step)), max(1, int(ref.width / step))
        transform = ref.transform @ Affine.scale(ref.width / out_w, ref.height / out_h)
    layers, valid = [], np.ones((out_h, out_w), dtype=bool)
    for path, band in sources:
        with rasterio.open(path) as ds:
            if ds.crs != crs or ds.bounds != bounds:
                raise ValueError(f"{path.name} does not cover the same area as {sources[0][0].name}")
            a = ds.read(band, out_shape=(out_h, out_w), resampling=Resampling.average, masked=True)
        valid &= ~np.ma.getmaskarray(a)
        layers.append(np.asarray(a.filled(0), dtype=np.float32))
    arr = np.stack(layers)
    valid &= arr.any(axis=0)  # all-zero pixels are the fill of an L1C tile edge
    return arr, valid, crs, transform, bounds


def _quicklook_layer(sources, name: str, max_size: int):
    arr, valid, crs, transform, full_bounds = _read_rgb(sources, max_size)
    rgb = robust_stretch(arr, valid=valid)
    rgb[:, ~valid] = np.nan
    warped, image_bounds = warp_to_web_mercator(rgb, crs, transform, max_size=max_size)
    layer = image_overlay(np.moveaxis(warped, 0, -1), image_bounds, name=f"{name} (true colour)",
                          fmt="webp")
    return layer, _raster_ring(crs, full_bounds)


def _ring_bounds(ring) -> LonLatBounds:
    lons = [p[0] for p in ring]
    lats = [p[1] for p in ring]
    return (min(lons), min(lats), max(lons), max(lats))


def scene_layers(source, *, bands: Optional[Sequence[str]] = None, name: Optional[str] = None,
                 max_size: int = 768):
    """Quicklook and footprint layers of one georeferenced scene.

    ``source``: one multi-band raster (red, green and blue found by name: ``bands`` or
    the file's band descriptions), or the red, green and blue files (each a path or a
    ``(path, band_index)`` pair). The image is read decimated, stretched per band between
    its 2nd and 98th percentile and warped to Web Mercator. Returns ``(layers, lon/lat bounds)``.
    """
    sources = _rgb_sources(source, bands)
    name = name or sources[0][0].stem
    overlay, ring = _quicklook_layer(sources, name, max_size)
    return [overlay, footprint_layer(ring, name=f"{name} footprint")], _ring_bounds(ring)


def catalog_layers(catalog=None, *, max_size: int = 768):
    """Layers for every scene a local catalog serves: a true-colour quicklook where the
    scene has red, green and blue bands, and its footprint.

    ``catalog``: a ``LocalProvider``, or what ``LocalProvider(catalog)`` accepts (a folder,
    a scene/STAC JSON, a raster; None is the embedded sample). Returns
    ``(layers, lon/lat bounds of all scenes)``.
    """
    from rs_embed import LocalProvider

    provider = catalog if isinstance(catalog, LocalProvider) else LocalProvider(catalog)
    layers, boxes = [], []
    for scene in provider.scenes:
        names = list(scene.bands)
        idx = rgb_band_indices(names)
        ring = None
        if idx is not None:
            files = [scene.bands[names[i]] for i in idx]
            overlay, ring = _quicklook_layer([(Path(f.path), f.index) for f in files], scene.id, max_size)
            layers.append(overlay)
        else:
            any_band = next(iter(scene.bands.values()))
            ring = _raster_ring(any_band.crs, any_band.bounds)
        layers.append(footprint_layer(ring, name=f"{scene.id} footprint"))
        boxes.append(_ring_bounds(ring))
    bounds = (min(b[0] for b in boxes), min(b[1] for b in boxes),
              max(b[2] for b in boxes), max(b[3] for b in boxes))
    return layers, bounds


def sample_layers(max_size: int = 768):
    """Quicklook and footprint of the Sentinel-2 scene embedded in rs_embed (offline)."""
    return catalog_layers(None, max_size=max_size)


#: the legend of PCA → RGB overlays (the map's layer panel shows it beside the group)
PCA_RGB_LEGEND = ("PCA → RGB of the grid embeddings, one PCA for all ROIs: "
                  "<span style='color:#d32f2f'>red = PC1</span>, "
                  "<span style='color:#388e3c'>green = PC2</span>, "
                  "<span style='color:#1976d2'>blue = PC3</span>")


def embedding_overlay(source, model: Optional[str] = None, item=0, *, opacity: float = 0.75,
                      names: Optional[Sequence[str]] = None):
    """A grid embedding's PCA-to-RGB image as a map layer at the ROI's true position.

    ``item`` is an index or a ROI name. The PCA is fitted on every item of the export,
    so overlays of different ROIs share one colour scale (:data:`PCA_RGB_LEGEND`). Attach
    it to its ROI so it sits in the *Embeddings* group and goes when the ROI moves:
    ``picker.attach("roi_01", embedding_overlay("exports/run", "rcf", "roi_01"),
    legend=PCA_RGB_LEGEND)``. For every ROI at once use :func:`embedding_overlays`.
    """
    from . import export_view as ev

    res = ev.as_result(source)
    names = ev.item_names(res, names)
    if isinstance(item, str) and item not in names:
        raise ValueError(f"no ROI named {item!r} in this export; its ROIs are {list(names)}")
    i = names.index(item) if isinstance(item, str) else ev.select(res.n_items, [item], 1)[0]
    layers = embedding_overlays(res, model, opacity=opacity, names=names, items=[i])
    if names[i] not in layers:
        raise ValueError(f"item {names[i]!r} has no embedding for {ev.pick_model(res, model)!r}")
    return layers[names[i]]


def embedding_overlays(source, model: Optional[str] = None, *, opacity: float = 0.75,
                       names: Optional[Sequence[str]] = None, items: Optional[Sequence[int]] = None) -> dict:
    """``{ROI name: layer}`` of the PCA-to-RGB image of every ROI with a grid embedding
    (or of ``items``), from one PCA fitted on all of them."""
    from . import export_view as ev
    from .analysis import pca_rgb

    res = ev.as_result(source)
    model = ev.pick_model(res, model)
    emb = ev.embeddings(res, model)
    if emb.ndim != 4:
        raise ValueError(f"{model!r} was exported as pooled vectors {emb.shape}; "
                         "export with output=OutputSpec.grid() for a map overlay")
    names = ev.item_names(res, names)
    ok = [j for j in range(res.n_items) if np.isfinite(emb[j]).any()]
    if not ok:
        return {}
    rgbs = dict(zip(ok, pca_rgb([emb[j] for j in ok])))
    patches = ev.inputs(res, model)
    out = {}
    for i in (ok if items is None else [j for j in items if j in rgbs]):
        rgb = rgbs[i]
        h, w = rgb.shape[:2]
        in_hw = patches[i].shape[-2:] if patches[i] is not None else (h, w)
        meta = (res.models[model].meta or [None] * res.n_items)[i] or {}
        geo = meta.get("grid_georef") if isinstance(meta, dict) else None
        if geo and (geo.get("height"), geo.get("width")) == (h, w):
            # where the model's cells really lie (centre crops and ROI crops included)
            crs, cell = geo["crs"], Affine(*geo["transform"][:6])
        else:
            crs, transform = ev.input_grid(res, model, i, in_hw)
            cell = transform @ Affine.scale(in_hw[1] / w, in_hw[0] / h)
        warped, bounds = warp_to_web_mercator(np.moveaxis(rgb, -1, 0), crs, cell,
                                              min_size=256, nearest=True)
        out[names[i]] = image_overlay(np.moveaxis(warped, 0, -1), bounds,
                                      name=f"{model} PCA: {names[i]}", opacity=opacity)
    return out


def input_overlay(source, model: Optional[str] = None, item=0, *, names: Optional[Sequence[str]] = None):
    """The true-colour input patch a model received, as a map layer at its true position."""
    from . import export_view as ev
    from .quicklook import rgb_image

    res = ev.as_result(source)
    model = ev.pick_model(res, model)
    names = ev.item_names(res, names)
    i = names.index(item) if isinstance(item, str) else ev.select(res.n_items, [item], 1)[0]
    patch = ev.inputs(res, model)[i]
    if patch is None:
        raise ValueError(f"item {names[i]!r} has no saved input for {model!r} (export with save_inputs=True)")
    rgb = rgb_image(patch, ev.input_bands(res, model))
    crs, transform = ev.input_grid(res, model, i, patch.shape[-2:])
    warped, bounds = warp_to_web_mercator(np.moveaxis(rgb, -1, 0), crs, transform, min_size=256)
    return image_overlay(np.moveaxis(warped, 0, -1), bounds, name=f"{model} input: {names[i]}")
