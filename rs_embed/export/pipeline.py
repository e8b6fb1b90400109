"""The chunk loop shared by both layouts: fetch ahead, infer model by model, hand off writes.

Chunk k+1 is submitted to the fetch pool before chunk k is waited for, so fetching
overlaps inference and writing, and at most two chunks of patches are held by the
fetch and infer stages (the writer queue holds what is being written).
"""

from __future__ import annotations

import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import ModelError, ProviderError, RsEmbedError, keep_warning_settings, warn
from .. import input_checks
from ..io.manifest import error_message
from .fetch import Cancelled, Fetcher, FetchResult, ProviderStuck
from .infer import Inference, ModelOutcome
from .job import ExportJob
from .progress import Progress

Fetched = Dict[int, Dict[int, FetchResult]]
Outcomes = Dict[str, Dict[int, ModelOutcome]]  # model key -> point -> outcome


class ExportError(RsEmbedError, RuntimeError):
    """An export stopped at a failure (``continue_on_error=False``); says where."""

    def __init__(self, message: str, *, point_index: int, model: Optional[str]):
        super().__init__(message)
        self.point_index = point_index
        self.model = model


class Timings:
    def __init__(self):
        self.fetch_wait_s = 0.0
        self.infer_s: Dict[str, float] = {}
        self.t0 = time.perf_counter()

    def as_dict(self, write_s: float, extra: Optional[dict] = None) -> dict:
        d = {"wall_s": round(time.perf_counter() - self.t0, 3),
             "fetch_wait_s": round(self.fetch_wait_s, 3),
             "infer_s": {k: round(v, 3) for k, v in self.infer_s.items()},
             "write_s": round(write_s, 3)}
        d.update(extra or {})
        return d


def failure_error(job: ExportJob, i: int, model: Optional[str], out: ModelOutcome) -> Exception:
    """The exception ``continue_on_error=False`` raises: names the point and the model."""
    exc = out.exc
    where = f"point {i} ({job.names[i]!r})" + (f", model {model!r}" if model else "")
    msg = f"export failed at {where} during {out.stage}: {type(exc).__name__}: {exc}"
    stage, cause_type, cause_msg = out.stage, type(exc).__name__, str(exc)
    if isinstance(exc, ProviderError):
        err: Exception = ProviderError(msg, transient=exc.transient)
    elif isinstance(exc, ModelError):
        err = ModelError(msg)
    else:
        err = ExportError(msg, point_index=i, model=model)
    err.point_index = i  # type: ignore[attr-defined]
    err.model = model  # type: ignore[attr-defined]
    err.stage = stage  # type: ignore[attr-defined]
    err.cause = {"type": cause_type, "message": cause_msg}  # type: ignore[attr-defined]
    return err


def stop_record(stop: Tuple[Optional[int], BaseException]) -> dict:
    """The run manifest's record of why an export stopped: point, model, type, message."""
    i, err = stop
    cause = getattr(err, "cause", None) or {"type": type(err).__name__, "message": error_message(err)}
    return {"point_index": getattr(err, "point_index", i), "model": getattr(err, "model", None),
            "type": cause["type"], "message": cause["message"],
            "stage": getattr(err, "stage", None) or "stopped", "stopped": True,
            "raised": f"{type(err).__name__}: {error_message(err)}"}


def interruption(kind: str, exc: Optional[BaseException] = None) -> Tuple[None, BaseException]:
    """A stop that is not a point's failure: ``cancelled`` (the cancel event),
    ``interrupted`` (Ctrl-C) or ``error`` (anything unexpected), as ``stop_record`` takes it."""
    if kind == "cancelled":
        err: BaseException = Cancelled("the export was cancelled (its cancel event was set); "
                                       "resume=True continues it")
    elif kind == "interrupted":
        err = exc if exc is not None else KeyboardInterrupt()
        err_cause = {"type": type(err).__name__,
                     "message": "the export was interrupted (Ctrl-C); resume=True continues it"}
        return None, _with_cause(err, err_cause, "interrupted")
    else:
        err = exc  # type: ignore[assignment]
    return None, _with_cause(err, {"type": type(err).__name__, "message": error_message(err)}, kind)


def _with_cause(err: BaseException, cause: dict, stage: str) -> BaseException:
    for k, v in (("cause", cause), ("stage", stage), ("point_index", None), ("model", None)):
        if getattr(err, k, None) is None:
            try:
                setattr(err, k, v)
            except Exception:  # pragma: no cover - exceptions with __slots__
                pass
    return err


def nodata_issue(res: FetchResult) -> Optional[str]:
    """The mostly-nodata finding of one fetched patch (the rule and threshold of
    :mod:`rs_embed.input_checks`), or None."""
    f = res.nodata_fraction
    if not input_checks.mostly_nodata(f):
        return None
    return f"{f:.1%} of pixels are nodata (limit {input_checks.MAX_NODATA:.0%})"


def nodata_warning(job: ExportJob, i: int, group, res: FetchResult) -> Optional[dict]:
    """The manifest's warning entry for a mostly-nodata patch (exported, not failed)."""
    issue = nodata_issue(res)
    if issue is None:
        return None
    return {"type": "mostly_nodata", "point_index": i, "models": [m.name for m in group.models],
            "nodata_fraction": res.nodata_fraction, "limit": input_checks.MAX_NODATA,
            "message": (f"point {i} ({job.names[i]!r}): {issue}; its embeddings describe mostly fill "
                        "values (the ROI lies partly outside the imagery or under masked pixels)")}


def warn_mostly_nodata(job: ExportJob, warnings: Sequence[dict]) -> None:
    """One visible warning for all mostly-nodata points of the run (as ``get_embedding`` warns)."""
    points = sorted({w["point_index"]: w for w in warnings}.values(), key=lambda w: w["point_index"])
    if not points:
        return
    shown = ", ".join(f"#{w['point_index']} {job.names[w['point_index']]!r} ({w['nodata_fraction']:.0%})"
                      for w in points[:5])
    more = f" and {len(points) - 5} more" if len(points) > 5 else ""
    warn(f"{len(points)} of {job.n_items} point(s) have mostly-nodata patches (more than "
         f"{input_checks.MAX_NODATA:.0%} of pixels filled with fill_value): {shown}{more}; they are exported with a "
         "'mostly_nodata' warning in their manifest (fail_on_bad_input=True fails them instead)")


def bad_input_error(job: ExportJob, i: int, fetched: Fetched) -> Optional[Exception]:
    """``fail_on_bad_input``: the first failed input check of point ``i`` as an error."""
    for g in job.groups:
        res = fetched[i][g.gid]
        if not res.ok:
            continue
        issues = list(res.report["issues"]) if res.report is not None and not res.report["ok"] else []
        nodata = nodata_issue(res)
        if nodata is not None and not any("nodata" in x for x in issues):
            issues.append(nodata)
        if issues:
            err = ProviderError(
                f"input check failed at point {i} ({job.names[i]!r}) for models "
                f"{[m.name for m in g.models]}: {'; '.join(issues)} "
                "(fail_on_bad_input=True)")
            err.point_index = i  # type: ignore[attr-defined]
            err.model = g.owner.name  # type: ignore[attr-defined]
            err.stage = "input_check"  # type: ignore[attr-defined]
            return err
    return None


def first_failure(job: ExportJob, chunk: Sequence[int], outcomes: Outcomes) -> Optional[Tuple[int, Exception]]:
    for i in chunk:
        for m in job.models:
            out = outcomes[m.key][i]
            if out.status != "ok":
                return i, failure_error(job, i, m.name, out)
    return None


ChunkHandler = Callable[[List[int], Fetched, Outcomes], None]
#: polled between points/chunks: ``(point, error)`` when the export must stop now
Abort = Callable[[], Optional[Tuple[int, Exception]]]


def run_chunks(job: ExportJob, todo: Sequence[int], progress: Progress, timings: Timings,
               handle: ChunkHandler, *, batch: bool, cancel=None,
               abort: Optional[Abort] = None) -> Optional[Tuple[int, Exception]]:
    """Fetch, embed and hand over ``todo`` chunk by chunk; ``handle(chunk, fetched, outcomes)``
    writes a chunk.

    With ``batch`` each model runs once per chunk; without (per-item inference) points
    go through one by one as their patches arrive. Returns ``(point, error)`` when the
    export must stop (``continue_on_error=False`` or ``fail_on_bad_input``) after what
    was complete was handed over; the caller finishes its files and raises the error.
    Raises ``Cancelled`` as soon as ``cancel.is_set()`` (also while waiting for
    fetches: a hanging provider is walked away from). ``abort()`` is asked between
    chunks (and between points when streaming); what it returns stops the export the
    same way (e.g. a failed write with ``continue_on_error=False``). A backend that
    stops answering altogether (``ProviderStuck``) stops the export like a failed point.
    """
    if not todo:
        return None
    cs = job.chunk_size
    chunks = [list(todo[k:k + cs]) for k in range(0, len(todo), cs)]
    fetcher = Fetcher(job.provider, job.spatials, job.temporal, job.groups,
                      workers=job.num_workers, retries=job.max_retries, backoff_s=job.retry_backoff_s,
                      timeout_s=job.fetch_timeout_s, check_inputs=job.fail_on_bad_input,
                      point_names=job.names, cancel=cancel)
    infer = Inference(backend=job.backend, temporal=job.temporal, output=job.output,
                      input_prep=job.input_prep, device_batch=batch)
    try:
        with keep_warning_settings():  # worker threads must not leave their filters behind
            return _loop(job, chunks, fetcher, infer, progress, timings, handle, batch, abort)
    except ProviderStuck as exc:  # the backend is down: stop like a failed point
        return getattr(exc, "point_index", todo[0]), exc
    finally:
        fetcher.close()


def _loop(job, chunks, fetcher, infer, progress, timings, handle, batch, abort):
    """The chunks in order, the next one fetched while this one is embedded and written."""
    ahead = fetcher.submit(chunks[0])
    for k, chunk in enumerate(chunks):
        if fetcher.cancelled():
            raise Cancelled()
        stop = abort() if abort is not None else None
        if stop is not None:
            return stop
        current = ahead
        ahead = fetcher.submit(chunks[k + 1]) if k + 1 < len(chunks) else None
        if batch:
            stop = _batched_chunk(job, chunk, current, fetcher, infer, progress, timings, handle)
        else:
            stop = _streamed_chunk(job, chunk, current, fetcher, infer, progress, timings, handle, abort)
        if stop is not None:
            return stop
        del current
    return None


def _infer(job, infer, m, fetched, batch, progress, timings) -> Dict[int, ModelOutcome]:
    t1 = time.perf_counter()
    out = infer.run(m, fetched, batch)
    timings.infer_s[m.name] = timings.infer_s.get(m.name, 0.0) + time.perf_counter() - t1
    progress.model(m.name).update(len(fetched))
    return out


def _batched_chunk(job, chunk, current, fetcher, infer, progress, timings, handle):
    """Wait for the whole chunk, run each model on it as one batch, hand it over."""
    t0 = time.perf_counter()
    fetched = fetcher.gather(current)
    timings.fetch_wait_s += time.perf_counter() - t0
    stop: Optional[Tuple[int, Exception]] = None
    if job.fail_on_bad_input:
        for i in chunk:
            err = bad_input_error(job, i, fetched)
            if err is not None:
                stop = (i, err)
                break
    usable = fetched if stop is None else {i: fetched[i] for i in chunk if i < stop[0]}
    outcomes: Outcomes = {m.key: _infer(job, infer, m, usable, True, progress, timings) for m in job.models}
    if stop is not None:
        handle([i for i in chunk if i < stop[0]], fetched, outcomes)
        return stop
    if not job.continue_on_error:
        stop = first_failure(job, chunk, outcomes)
    if stop is not None:
        handle([i for i in chunk if all(outcomes[m.key][i].status == "ok" for m in job.models)], fetched, outcomes)
        return stop
    handle(chunk, fetched, outcomes)
    return None


def _streamed_chunk(job, chunk, current, fetcher, infer, progress, timings, handle, abort=None):
    """One point at a time, as soon as its patches arrive (per-point inference): the model
    never waits for the slowest fetch of the chunk, and the writers start earlier."""
    for i in chunk:
        stop = abort() if abort is not None else None
        if stop is not None:
            return stop
        if fetcher.cancelled():
            raise Cancelled()
        t0 = time.perf_counter()
        fetched = fetcher.gather({i: current[i]})
        timings.fetch_wait_s += time.perf_counter() - t0
        if job.fail_on_bad_input:
            err = bad_input_error(job, i, fetched)
            if err is not None:
                return i, err
        outcomes: Outcomes = {m.key: _infer(job, infer, m, fetched, False, progress, timings) for m in job.models}
        if not job.continue_on_error:
            stop = first_failure(job, [i], outcomes)
            if stop is not None:
                return stop
        handle([i], fetched, outcomes)
    return None


__all__ = ["run_chunks", "Timings", "ExportError", "Cancelled", "Fetched", "Outcomes", "stop_record",
           "interruption", "error_message", "nodata_warning", "warn_mostly_nodata"]
