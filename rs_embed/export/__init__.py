"""The export engine: places x time x models -> datasets on disk.

``export_batch`` plans the request (which patches, shared by which models), then runs
fetch (thread pool, retries), inference (model by model, batched where it helps) and
writing (writer threads, temp files renamed into place, manifests last) as a pipeline
over chunks of points. See ``docs/pages/export.md`` for the user guide.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from ..io.lock import ExportLocked
from ..providers.base import DEFAULT_FETCH_TIMEOUT_S
from ..specs import InputPrepSpec, OutputSpec, SensorSpec, SpatialSpec, TemporalSpec
from .pipeline import ExportError
from .requests import DEFAULT_MAX_PATCH_MB, ExportConfig, ExportModelRequest, ExportTarget


def export_batch(
    *,
    spatials: Sequence[SpatialSpec],
    temporal: Optional[TemporalSpec],
    models: List[Union[str, ExportModelRequest]],
    out: Optional[str] = None,
    layout: Optional[str] = None,
    out_dir: Optional[str] = None,
    out_path: Optional[str] = None,
    names: Optional[List[str]] = None,
    backend: Any = "gee",
    device: str = "auto",
    output: OutputSpec = OutputSpec.pooled(),
    sensor: Optional[SensorSpec] = None,
    per_model_sensors: Optional[Dict[str, SensorSpec]] = None,
    format: str = "npz",
    save_inputs: bool = True,
    save_embeddings: bool = True,
    save_manifest: bool = True,
    fail_on_bad_input: bool = False,
    chunk_size: int = 16,
    num_workers: int = 8,
    continue_on_error: bool = False,
    max_retries: int = 0,
    retry_backoff_s: float = 0.0,
    async_write: bool = True,
    writer_workers: int = 2,
    resume: bool = False,
    show_progress: bool = True,
    input_prep: Union[InputPrepSpec, str] = "resize",
    fetch_timeout_s: float = DEFAULT_FETCH_TIMEOUT_S,
    max_patch_mb: float = DEFAULT_MAX_PATCH_MB,
    target: Optional[ExportTarget] = None,
    config: Optional[ExportConfig] = None,
    modality: Optional[str] = None,
    progress: Optional[Callable[[int, int, str], None]] = None,
    cancel: Optional[threading.Event] = None,
) -> Any:
    """Export inputs + embeddings + manifests for many ROIs x one time window x several models.

    ``spatials``: a list of ``PointBuffer``/``BBox``, or a ``PointBuffers`` (many points
    as arrays: what a million places should be given as).

    Output: ``out=`` with ``layout="per_item"`` (one file per ROI, named by ``names``
    or ``p00000``...) or ``layout="combined"`` (one file; ``out="x/run"`` writes
    ``x/run.npz``), or the legacy ``out_dir=`` / ``out_path=``, or ``target=ExportTarget``.
    Every argument is checked before anything is fetched or written (a rejected request
    leaves the output folder as it was). Returns the per-point manifests (per_item:
    a lazy sequence, each read from disk when indexed) or the combined manifest (combined).

    ``backend="gee"`` is the reference default; ``"auto"`` picks the local provider
    when its catalog covers the request, else Earth Engine when it is set up, else
    Earth Search (:func:`rs_embed.providers.resolve_backend`).
    Additions to the reference signature: ``target`` / ``config`` (request objects),
    ``modality`` (for every model; ``ExportModelRequest(modality=...)`` per model),
    ``progress(done, total, desc)`` (a callback on each exported point), ``cancel`` (a
    ``threading.Event``: when set, the export stops within about a second, even while a
    provider hangs, writes what it finished and returns it with ``stage: stopped``;
    ``resume=True`` continues it later), ``fetch_timeout_s`` (how long one patch fetch
    may take, retries inside the provider included, default 300 s; a fetch past it is
    abandoned and fails as a transient ``FetchTimeout``) and ``max_patch_mb`` (the
    largest input patch of one point, width x height x bands x 4 bytes, default
    1024 MiB; larger requests are refused before anything starts).

    One export at a time writes to a target: a second one fails at once with
    ``ExportLocked`` naming the process that holds it.
    """
    from .combined import CombinedExport
    from .job import build_job
    from .per_item import PerItemExport

    run = dict(format=format, save_inputs=save_inputs, save_embeddings=save_embeddings,
               save_manifest=save_manifest, fail_on_bad_input=fail_on_bad_input,
               chunk_size=chunk_size, num_workers=num_workers, continue_on_error=continue_on_error,
               max_retries=max_retries, retry_backoff_s=retry_backoff_s, async_write=async_write,
               writer_workers=writer_workers, resume=resume, show_progress=show_progress,
               input_prep=input_prep, fetch_timeout_s=fetch_timeout_s, max_patch_mb=max_patch_mb)
    job = build_job(spatials=spatials, temporal=temporal, models=models, out=out, layout=layout,
                    out_dir=out_dir, out_path=out_path, names=names, backend=backend, device=device,
                    output=output, sensor=sensor, per_model_sensors=per_model_sensors,
                    modality=modality, target=target, config=config, run=run,
                    progress=progress, cancel=cancel)
    if job.target.layout == "per_item":
        return PerItemExport(job).run()
    return CombinedExport(job).run()


def export_npz(
    *,
    spatial: SpatialSpec,
    temporal: Optional[TemporalSpec],
    models: List[Union[str, ExportModelRequest]],
    out_path: str,
    backend: Any = "gee",
    device: str = "auto",
    output: OutputSpec = OutputSpec.pooled(),
    sensor: Optional[SensorSpec] = None,
    per_model_sensors: Optional[Dict[str, SensorSpec]] = None,
    save_inputs: bool = True,
    save_embeddings: bool = True,
    save_manifest: bool = True,
    fail_on_bad_input: bool = False,
    continue_on_error: bool = False,
    max_retries: int = 0,
    retry_backoff_s: float = 0.0,
    input_prep: Union[InputPrepSpec, str] = "resize",
    fetch_timeout_s: float = DEFAULT_FETCH_TIMEOUT_S,
    max_patch_mb: float = DEFAULT_MAX_PATCH_MB,
) -> Dict[str, Any]:
    """One ROI, several models, one ``.npz``: a thin wrapper of :func:`export_batch`.

    Creates the parent directory, appends ``.npz`` when missing, and delegates with
    ``out_path=...`` and ``format="npz"``; returns the combined manifest.
    """
    from ..specs import check_spatial
    from .requests import check_path

    spatial = check_spatial(spatial)
    out_path = check_path("out_path", out_path)
    if not out_path.endswith(".npz"):
        out_path += ".npz"
    # the parent directory is created once the request has passed every check
    return export_batch(spatials=[spatial], temporal=temporal, models=models, out_path=out_path,
                        backend=backend, device=device, output=output, sensor=sensor,
                        per_model_sensors=per_model_sensors, format="npz", save_inputs=save_inputs,
                        save_embeddings=save_embeddings, save_manifest=save_manifest,
                        fail_on_bad_input=fail_on_bad_input, continue_on_error=continue_on_error,
                        max_retries=max_retries, retry_backoff_s=retry_backoff_s,
                        input_prep=input_prep, show_progress=False, fetch_timeout_s=fetch_timeout_s,
                        max_patch_mb=max_patch_mb)


__all__ = ["export_batch", "export_npz", "ExportTarget", "ExportConfig", "ExportModelRequest",
           "ExportError", "ExportLocked"]
