"""``rs-embed``: export embeddings and inspect patches from the command line.

    rs-embed export --rois points.csv --models rcf,spectral --year 2022 --out exports/run
    rs-embed export --sample --models rcf --backend local --out demo --layout per_item
    rs-embed inspect --lon -75.62 --lat 37.67 --model rcf --backend local
    rs-embed models                 # readiness of every model here
    rs-embed --version

Bad input ends with one line on stderr (``rs-embed: error: ...``) and exit code 2; an
export that fails while running (or finds its target locked by another export) exits
with 1, one that finishes with failed points (``--continue-on-error``) with 3, and one
interrupted by Ctrl-C with 130 after recording ``stage: stopped`` (``--resume``
continues it).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from typing import List, Optional, Sequence

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130


class InputError(Exception):
    """A bad command line or input file (exit code 2)."""


# ------------------------------------------------------------------------- ROIs


def _num(value: str, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number, got {value!r}") from None


_LON = ("lon", "longitude", "lng", "x")
_LAT = ("lat", "latitude", "y")
_NAME = ("name", "id", "label")
_BUF = ("buffer_m", "buffer")


def _col(header: List[str], options) -> Optional[int]:
    low = [h.strip().lower() for h in header]
    for o in options:
        if o in low:
            return low.index(o)
    return None


def read_csv_rois(path: str, buffer_m: float):
    """``lon,lat[,name]`` rows (header optional; columns found by name when present)."""
    from .specs import PointBuffer

    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r) and not r[0].startswith("#")]
    if not rows:
        raise InputError(f"{path}: no rows; expected lon,lat[,name] per line")
    header = rows[0]
    try:
        float(header[0]), float(header[1])
        has_header = False
    except (ValueError, IndexError):
        has_header = True
    ilon, ilat, iname, ibuf = 0, 1, 2, None
    if has_header:
        ilon, ilat = _col(header, _LON), _col(header, _LAT)
        if ilon is None or ilat is None:
            raise InputError(f"{path}: the header {header} has no lon/lat columns")
        iname, ibuf = _col(header, _NAME), _col(header, _BUF)
        rows = rows[1:]
    spatials, names = [], []
    for n, r in enumerate(rows, start=2 if has_header else 1):
        if len(r) <= max(ilon, ilat):
            raise InputError(f"{path}:{n}: expected lon,lat[,name], got {','.join(r)!r}")
        buf = _num(r[ibuf], f"{path}:{n} buffer_m") if ibuf is not None and ibuf < len(r) and r[ibuf].strip() else buffer_m
        try:
            spatials.append(PointBuffer(_num(r[ilon], f"{path}:{n} lon"), _num(r[ilat], f"{path}:{n} lat"), buf))
        except ValueError as exc:
            raise InputError(f"{path}:{n}: {exc}") from None
        names.append(r[iname].strip() if iname is not None and iname < len(r) and r[iname].strip() else None)
    return spatials, names


def read_geojson_rois(path: str, buffer_m: float):
    """Points (and MultiPoints) become PointBuffers; polygons their bounding BBox."""
    from .specs import BBox, PointBuffer

    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if doc.get("type") == "FeatureCollection":
        feats = doc.get("features") or []
    elif doc.get("type") == "Feature":
        feats = [doc]
    else:
        feats = [{"type": "Feature", "geometry": doc, "properties": {}}]
    spatials, names = [], []
    for k, f in enumerate(feats):
        geom = f.get("geometry") or {}
        props = f.get("properties") or {}
        name = props.get("name", props.get("id", f.get("id")))
        buf = props.get("buffer_m", buffer_m)
        kind, coords = geom.get("type"), geom.get("coordinates")
        try:
            if kind == "Point":
                spatials.append(PointBuffer(coords[0], coords[1], buf))
                names.append(None if name is None else str(name))
            elif kind == "MultiPoint":
                for j, c in enumerate(coords):
                    spatials.append(PointBuffer(c[0], c[1], buf))
                    names.append(None if name is None else f"{name}_{j}")
            elif kind in ("Polygon", "MultiPolygon"):
                flat = coords if kind == "Polygon" else [ring for poly in coords for ring in poly]
                xs = [p[0] for ring in flat for p in ring]
                ys = [p[1] for ring in flat for p in ring]
                spatials.append(BBox(min(xs), min(ys), max(xs), max(ys)))
                names.append(None if name is None else str(name))
            else:
                raise InputError(f"{path}: feature {k} has geometry {kind!r}; use Point, MultiPoint or Polygon")
        except (TypeError, IndexError):
            raise InputError(f"{path}: feature {k} has malformed coordinates {coords!r}") from None
        except ValueError as exc:
            raise InputError(f"{path}: feature {k}: {exc}") from None
    if not spatials:
        raise InputError(f"{path}: no features")
    return spatials, names


def read_rois(path: str, buffer_m: float):
    if not os.path.isfile(path):
        raise InputError(f"--rois {path!r}: no such file")
    ext = os.path.splitext(path)[1].lower()
    if ext in (".geojson", ".json"):
        return read_geojson_rois(path, buffer_m)
    if ext in (".csv", ".txt", ""):
        return read_csv_rois(path, buffer_m)
    raise InputError(f"--rois {path!r}: expected a .csv (lon,lat[,name]) or a .geojson of points")


def _names(raw: Sequence[Optional[str]]) -> Optional[List[str]]:
    if all(n is None for n in raw):
        return None
    from .io.keys import default_item_name

    return [n if n is not None else default_item_name(i) for i, n in enumerate(raw)]


def _temporal(args, fallback=None):
    from .specs import TemporalSpec

    if args.year is not None and (args.start or args.end):
        raise InputError("give --year or --start/--end, not both")
    if args.year is not None:
        return TemporalSpec.year(args.year)
    if args.start or args.end:
        if not (args.start and args.end):
            raise InputError("--start and --end go together (the window is [start, end))")
        return TemporalSpec.range(args.start, args.end)
    return fallback


def _models(value: str) -> List[str]:
    models = [m.strip() for m in value.split(",") if m.strip()]
    if not models:
        raise InputError("--models needs at least one model name, e.g. --models rcf,spectral")
    return models


# ---------------------------------------------------------------------- commands


def cmd_export(args) -> int:
    from . import export_batch
    from .specs import OutputSpec

    if bool(args.rois) == bool(args.sample):
        raise InputError("give the ROIs with --rois FILE (CSV or GeoJSON) or use --sample")
    fallback = None
    if args.sample:
        from . import sample

        pts = sample.points() if args.buffer_m is None else sample.points(args.buffer_m)
        spatials = [p.spatial for p in pts]
        raw_names = [p.name for p in pts]
        fallback = sample.TEMPORAL
    else:
        spatials, raw_names = read_rois(args.rois, 1000.0 if args.buffer_m is None else args.buffer_m)
    temporal = _temporal(args, fallback)
    fmt = args.format or {".nc": "netcdf", ".parquet": "parquet", ".zarr": "zarr"}.get(
        os.path.splitext(args.out.lower().rstrip("/"))[1], "npz")
    layout = args.layout or ("combined" if args.out.lower().rstrip("/").endswith((".npz", ".nc", ".parquet", ".zarr"))
                             or fmt in ("parquet", "zarr") else "per_item")
    names = _names(raw_names) if layout == "per_item" else None
    if layout != "per_item" and any(n is not None for n in raw_names):
        print("rs-embed: note: ROI names name the files of the per_item layout; a combined "
              "file keeps the ROIs in input order", file=sys.stderr)
    result = export_batch(
        spatials=spatials, temporal=temporal, models=_models(args.models), out=args.out, layout=layout,
        names=names, backend=args.backend, device=args.device,
        output=OutputSpec.grid() if args.output == "grid" else OutputSpec.pooled(),
        format=fmt, save_inputs=not args.no_inputs, save_embeddings=not args.no_embeddings,
        fail_on_bad_input=args.fail_on_bad_input, chunk_size=args.chunk_size, num_workers=args.workers,
        continue_on_error=args.continue_on_error, max_retries=args.max_retries,
        retry_backoff_s=args.retry_backoff, async_write=not args.sync_write,
        writer_workers=args.writer_workers, resume=args.resume, show_progress=not args.no_progress,
        input_prep=args.input_prep, fetch_timeout_s=args.fetch_timeout, max_patch_mb=args.max_patch_mb)
    if layout == "combined":
        status = result["status"]
        where = (result.get("npz_path") or result.get("nc_path") or result.get("parquet_path")
                 or result.get("zarr_path"))
        failed = {e["model"]: len(e["failed_indices"]) for e in result["models"] if e["failed_indices"]}
        warned = sorted({w["point_index"] for w in result.get("warnings") or ()})
    else:
        where = os.path.abspath(args.out)
        status, failed, warned = _per_item_summary(result, where)
    summary = {"status": status, "layout": layout, "format": fmt, "path": where, "n_items": len(spatials),
               "failed_points": failed, "mostly_nodata_points": warned}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{status}: {len(spatials)} ROIs x {len(_models(args.models))} models -> {where} ({layout}, {fmt})")
        for model, n in failed.items():
            print(f"  {model}: {n} point(s) failed; see the manifest for the errors")
        if warned:
            print(f"  {len(warned)} point(s) have mostly-nodata patches (see 'warnings' in the manifest)")
    return 0 if status == "ok" else EXIT_PARTIAL


def _per_item_summary(result, folder: str):
    """Status, failed points per model and mostly-nodata points of a per-item export: from
    its run manifest (one file, whatever the number of points), else from every manifest."""
    from .io.keys import RUN_MANIFEST

    try:
        with open(os.path.join(folder, RUN_MANIFEST), "rb") as fh:
            run = json.loads(fh.read())
        failed = {e["model"]: len(e["failed_indices"]) for e in run["models"] if e["failed_indices"]}
        warned = sorted({w["point_index"] for w in run.get("warnings") or ()})
        counts = run["summary"]
        n_ok, n = counts["ok_points"], counts["total_points"]
        status = "ok" if n_ok == n else ("failed" if n_ok == 0 and not counts["partial_points"] else "partial")
        return status, failed, warned
    except (OSError, ValueError, KeyError, TypeError):
        pass
    statuses, failed, warned = set(), {}, []
    for m in result:
        statuses.add(m["status"] if m is not None else "failed")
        for e in (m or {}).get("models") or ():
            if e["status"] != "ok":
                failed[e["model"]] = failed.get(e["model"], 0) + 1
        if m is not None and m.get("warnings"):
            warned.append(m["point_index"])
    status = "ok" if statuses == {"ok"} else ("failed" if statuses == {"failed"} else "partial")
    return status, failed, sorted(warned)


def cmd_inspect(args) -> int:
    from .inspect import inspect_provider_patch
    from .specs import PointBuffer, SensorSpec

    if args.model:
        from .models import get_embedder

        if args.collection or args.bands:
            raise InputError("give --model or --collection/--bands, not both")
        sensor = get_embedder(args.model, device="cpu").default_sensor()
        if sensor is None:
            raise InputError(f"model {args.model!r} has no default sensor; give --collection and --bands")
        if args.scale_m is not None:
            import dataclasses

            sensor = dataclasses.replace(sensor, scale_m=args.scale_m)
    else:
        if not (args.collection and args.bands):
            raise InputError("give --model NAME, or --collection and --bands (comma-separated)")
        sensor = SensorSpec(collection=args.collection, bands=tuple(b.strip() for b in args.bands.split(",") if b.strip()),
                            scale_m=args.scale_m or 10)
    if args.save_dir:
        import dataclasses

        sensor = dataclasses.replace(sensor, check_save_dir=args.save_dir)
    from .providers import resolve_backend

    spatial = PointBuffer(args.lon, args.lat, args.buffer_m)
    fallback = None
    if _temporal(args) is None:  # no window given: the embedded scene's, where local serves the point
        from . import sample

        if resolve_backend(args.backend, spatials=[spatial], temporal=sample.TEMPORAL,
                           sensors=[sensor]) == "local":
            fallback = sample.TEMPORAL
    value_range = None
    if args.value_range:
        parts = args.value_range.split(",")
        if len(parts) != 2:
            raise InputError(f"--value-range must be LOW,HIGH, got {args.value_range!r}")
        value_range = (_num(parts[0], "--value-range low"), _num(parts[1], "--value-range high"))
    rep = inspect_provider_patch(spatial=spatial,
                                 temporal=_temporal(args, fallback), sensor=sensor, backend=args.backend,
                                 name=args.name, value_range=value_range)
    if args.json:
        print(json.dumps(rep))
    else:
        r = rep["report"]
        print(f"{'ok' if rep['ok'] else 'NOT ok'}: {rep['name']} {r['shape']} from {rep['backend']} "
              f"({sensor.collection})")
        print(f"  nodata {r['nodata_fraction']:.1%}, NaN {r['nan_fraction']:.1%}, "
              f"out of range {r['out_of_range_fraction']:.1%}")
        for band, st in r["bands"].items():
            if st["mean"] is not None:
                print(f"  {band:>4}: min {st['min']:.1f}  mean {st['mean']:.1f}  max {st['max']:.1f}")
        for issue in r["issues"]:
            print(f"  issue: {issue}")
        for k, v in rep.get("artifacts", {}).items():
            print(f"  {k}: {v}")
    return 0 if rep["ok"] else EXIT_PARTIAL


def cmd_models(args) -> int:
    from .models import describe_model
    from .readiness import check_models, list_backends

    if args.backend not in list_backends():
        raise InputError(f"--backend {args.backend!r} is not a known backend; known: {', '.join(list_backends())}")
    from .models import list_models

    # each model on its own: "auto" names the backend an export of that model would use
    report = [r for m in list_models() for r in check_models([m], backend=args.backend)]
    if args.json:
        print(json.dumps([r.to_dict() for r in report]))
        return 0
    backends = sorted({r.backend for r in report})
    where = repr(backends[0]) if len(backends) == 1 else \
        f"{args.backend!r} (for each model the one it picks: {', '.join(backends)})"
    print(f"models on backend {where} (READY: libraries, weights, backend, sensor and "
          f"credentials all pass)" if report else "no models registered")
    for r in report:
        try:
            summary = describe_model(r.model).get("summary", "")
        except Exception as exc:  # a plugin that cannot describe itself still gets listed
            summary = f"(cannot describe: {exc})"
        mark = "READY" if r.ready else "not ready"
        on = f" [{r.backend}]" if len(backends) > 1 else ""
        print(f"{r.model:14s} {mark:9s}  {summary}{on}")
        for p in r.problems + r.warnings:
            print(f"{'':14s} {'':9s}  - {' '.join(p.split())}")
    return 0


# ------------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    from .export.requests import DEFAULT_MAX_PATCH_MB
    from .providers.base import DEFAULT_FETCH_TIMEOUT_S

    p = argparse.ArgumentParser(
        prog="rs-embed",
        description="Remote-sensing embeddings for places x times x models, exported as datasets.",
        epilog="Run 'rs-embed COMMAND --help' for the options of a command.")
    from . import __version__

    p.add_argument("--version", action="version", version=f"rs-embed {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    e = sub.add_parser(
        "export", help="export inputs + embeddings + manifests for many ROIs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Export model inputs, embeddings and JSON manifests for many ROIs.",
        epilog="examples:\n"
               "  rs-embed export --sample --models rcf,spectral --backend local --out demo\n"
               "  rs-embed export --rois sites.csv --buffer-m 1000 --models rcf --year 2022 \\\n"
               "                  --out exports/sites.npz --backend auto\n"
               "  rs-embed export --rois sites.geojson --models spectral --start 2022-06-01 \\\n"
               "                  --end 2022-09-01 --out exports/sites --layout per_item --resume\n\n"
               "ROI files: a CSV with lon,lat[,name] per row (header optional; a buffer_m\n"
               "column overrides --buffer-m), or a GeoJSON of Point/MultiPoint features\n"
               "(properties.name names the files) or Polygons (their bounding box).")
    src = e.add_argument_group("what to export")
    src.add_argument("--rois", metavar="FILE", help="CSV (lon,lat[,name]) or GeoJSON of points")
    src.add_argument("--sample", action="store_true", help="the points of the embedded Sentinel-2 sample")
    src.add_argument("--buffer-m", type=float, default=None, metavar="M",
                     help="half side of the square around each point, metres (default 1000: 2 km x 2 km; "
                          "with --sample at most and by default 500)")
    src.add_argument("--models", required=True, metavar="A,B", help="comma-separated model names (rs-embed models)")
    src.add_argument("--start", metavar="YYYY-MM-DD", help="window start (inclusive)")
    src.add_argument("--end", metavar="YYYY-MM-DD", help="window end (exclusive)")
    src.add_argument("--year", type=int, metavar="YYYY", help="a calendar year instead of --start/--end")
    src.add_argument("--output", choices=("pooled", "grid"), default="pooled",
                     help="pooled vectors (default) or grids")
    src.add_argument("--input-prep", choices=("resize", "tile", "auto"), default="resize",
                     help="large ROIs: let the model resize (default) or tile")
    dst = e.add_argument_group("where")
    dst.add_argument("--out", required=True, metavar="PATH",
                     help="output folder (per_item) or file (combined; .npz/.nc added when missing)")
    dst.add_argument("--layout", choices=("per_item", "combined"),
                     help="one file per ROI or one file (default: combined when --out ends with .npz/.nc)")
    dst.add_argument("--format", choices=("npz", "netcdf", "parquet", "zarr"),
                     help="file format (default npz; netcdf for .nc, parquet for .parquet, zarr for .zarr; "
                          "parquet and zarr need --layout combined)")
    dst.add_argument("--no-inputs", action="store_true", help="do not save the input patches")
    dst.add_argument("--no-embeddings", action="store_true", help="do not save the embeddings")
    run = e.add_argument_group("how")
    run.add_argument("--backend", default="auto",
                     help="imagery provider: auto (default: local when it covers the request, else Earth "
                          "Engine when set up, else earth-search), local, gee, earth-search, ...")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    run.add_argument("--workers", type=int, default=8, metavar="N", help="concurrent fetches (default 8)")
    run.add_argument("--chunk-size", type=int, default=16, metavar="N",
                     help="points per chunk / inference batch (default 16)")
    run.add_argument("--writer-workers", type=int, default=2, metavar="N", help="writer threads (default 2)")
    run.add_argument("--sync-write", action="store_true", help="write in the main thread")
    run.add_argument("--max-retries", type=int, default=0, metavar="N",
                     help="retries of transient fetch/write errors (default 0)")
    run.add_argument("--retry-backoff", type=float, default=0.0, metavar="S", help="seconds between retries")
    run.add_argument("--fetch-timeout", type=float, default=DEFAULT_FETCH_TIMEOUT_S, metavar="S",
                     help=f"give up a patch fetch after S seconds (default {DEFAULT_FETCH_TIMEOUT_S:g}); "
                          "a hanging backend cannot stall the export")
    run.add_argument("--max-patch-mb", type=float, default=DEFAULT_MAX_PATCH_MB, metavar="MB",
                     help=f"refuse ROIs whose input patch would exceed MB MiB (default {DEFAULT_MAX_PATCH_MB:g})")
    run.add_argument("--continue-on-error", action="store_true",
                     help="record failures (NaN rows) and go on instead of stopping")
    run.add_argument("--fail-on-bad-input", action="store_true", help="stop when an input patch fails its checks")
    run.add_argument("--resume", action="store_true",
                     help="skip what a previous run of the same request finished; redo the rest")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--json", action="store_true", help="print a one-line JSON summary")
    e.set_defaults(func=cmd_export)

    i = sub.add_parser("inspect", help="fetch one patch and check it (no model runs)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Fetch the raw patch a sensor describes and report NaN/nodata, "
                                   "ranges and per-band statistics.",
                       epilog="examples:\n"
                              "  rs-embed inspect --lon -75.62 --lat 37.67 --model rcf --backend local\n"
                              "  rs-embed inspect --lon 121.5 --lat 31.2 --collection COPERNICUS/S2_SR_HARMONIZED \\\n"
                              "                   --bands B4,B3,B2 --year 2022 --backend gee --save-dir quicklooks")
    i.add_argument("--lon", type=float, required=True, help="longitude of the ROI centre (degrees)")
    i.add_argument("--lat", type=float, required=True, help="latitude of the ROI centre (degrees)")
    i.add_argument("--buffer-m", type=float, default=1000.0, metavar="M", help="half side in metres (default 1000)")
    i.add_argument("--model", help="use this model's default sensor")
    i.add_argument("--collection", help="collection id (instead of --model)")
    i.add_argument("--bands", metavar="B1,B2", help="comma-separated band names (with --collection)")
    i.add_argument("--scale-m", type=float, metavar="M", help="pixel size in metres")
    i.add_argument("--start", metavar="YYYY-MM-DD")
    i.add_argument("--end", metavar="YYYY-MM-DD")
    i.add_argument("--year", type=int, metavar="YYYY")
    i.add_argument("--backend", default="auto", help="auto (default), local, gee, earth-search, ...")
    i.add_argument("--name", default="patch", help="name used in the report and quicklook file")
    i.add_argument("--value-range", metavar="LOW,HIGH", help="expected value range")
    i.add_argument("--save-dir", metavar="DIR", help="write a quicklook PNG there")
    i.add_argument("--json", action="store_true", help="print the full report as JSON")
    i.set_defaults(func=cmd_inspect)

    m = sub.add_parser("models", help="list the models and whether each can run here",
                       description="List every model with its readiness on a backend: libraries "
                                   "installed, default weights on disk, backend available (credentials) "
                                   "and able to serve the model's sensor.")
    m.add_argument("--backend", default="auto", help="backend to check against (default auto)")
    m.add_argument("--json", action="store_true", help="print the full readiness report as JSON")
    m.set_defaults(func=cmd_models)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    from .errors import ModelError, ProviderError, SpecError

    try:
        return args.func(args)
    except (InputError, SpecError, ModelError) as exc:
        print(f"rs-embed: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FileNotFoundError as exc:
        print(f"rs-embed: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("rs-embed: interrupted; what was finished is on disk and the manifest says "
              "'stopped'; run again with --resume to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ProviderError, OSError, RuntimeError, ImportError) as exc:
        print(f"rs-embed: error: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
