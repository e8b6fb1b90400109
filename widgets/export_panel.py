"""A form that turns into an ``export_batch`` call, and runs it without blocking the kernel.

The panel's only product is the keyword arguments a person would pass to
``rs_embed.export_batch`` (:meth:`ExportPanel.export_kwargs`, and the same call as
source code in :meth:`ExportPanel.code`). *Export* hands them to ``export_batch`` in a
background thread: the notebook stays usable, the progress bar inside the panel moves,
and *Cancel* stops the run after the chunk in flight, leaving files that
``resume=True`` completes.
"""

from __future__ import annotations

import datetime as _dt
import os
import threading
import time
from html import escape
from typing import Any, Dict, List, Optional, Sequence

import traitlets

import rs_embed
from rs_embed import (BBox, ModelError, OutputSpec, PointBuffer, RsEmbedError, SpecError,
                      TemporalSpec)

from .extra import require
from .rois import check_name, check_unique

W = require("ipywidgets", "ExportPanel")

_SHORT = {"description_width": "initial"}


def _row(label: str, *widgets) -> "W.HBox":
    """One line of the form: a fixed-width label, then its controls."""
    head = W.Label(label, layout=W.Layout(width="7em", min_width="7em"))
    return W.HBox([head, *widgets], layout=W.Layout(align_items="center", margin="2px 0"))


def _choice(options, value) -> "W.ToggleButtons":
    return W.ToggleButtons(options=options, value=value, style={"button_width": "9em"})


def _spatial_source(s) -> str:
    if isinstance(s, PointBuffer):
        return f"PointBuffer({s.lon!r}, {s.lat!r}, {s.buffer_m!r})"
    return f"BBox({s.minlon!r}, {s.minlat!r}, {s.maxlon!r}, {s.maxlat!r})"


def _value_source(v) -> str:
    """Python source for one keyword argument value of the call."""
    if isinstance(v, OutputSpec):  # the form only makes the two plain specs
        return f"OutputSpec.{v.mode}()"
    return repr(v)  # TemporalSpec's repr is its constructor call


def describe_summary(model: str) -> str:
    """A few lines about ``model`` from its ``describe()`` (no weights loaded)."""
    try:
        d = rs_embed.describe_model(model)
    except Exception as exc:  # a broken plug-in must not break the form
        return f"<b>{escape(model)}</b>: cannot describe ({escape(str(exc))})"
    inputs = d.get("inputs") or {}
    bands = inputs.get("bands") or []
    band_txt = ", ".join(bands) if len(bands) <= 13 else f"{len(bands)} bands"
    scale = (d.get("defaults") or {}).get("scale_m")
    lines = [
        f"input {inputs.get('collection', '—')} [{band_txt}]" + (f" at {scale} m" if scale else ""),
        f"time: {(d.get('temporal') or {}).get('mode', '—')} · output: {'/'.join(d.get('output') or [])}"
        f" · backends: {', '.join(d.get('backend') or [])}",
    ]
    head = f"<b>{escape(model)}</b> <i>({escape(str(d.get('type', '?')))})</i>: {escape(str(d.get('summary', '')))}"
    return "<br>".join([head] + [escape(line) for line in lines])


class ExportPanel(W.VBox):
    """Pick models, time, output and run settings; press Export.

    ROIs come from a linked :class:`RoiPicker` (its current ``spatials``/``names`` are
    read when the export starts) or from ``spatials=`` / ``names=`` lists.

    ``status`` is one of ``idle``, ``running``, ``cancelling``, ``done``, ``partial``,
    ``cancelled``, ``failed`` or ``invalid``; ``result`` holds what ``export_batch``
    returned, ``error`` a one-line reason when it did not finish.
    """

    status = traitlets.Unicode("idle")
    result = traitlets.Any(None)
    error = traitlets.Unicode("")

    def __init__(self, picker=None, *, spatials: Optional[Sequence] = None,
                 names: Optional[Sequence[str]] = None, models: Sequence[str] = ("rcf",),
                 temporal: Optional[TemporalSpec] = None, out: str = "exports/run",
                 layout: str = "per_item", backend: str = "auto", device: str = "auto",
                 output: str = "pooled", format: str = "npz", chunk_size: int = 16,
                 num_workers: int = 8, resume: bool = False, input_prep: str = "resize",
                 save_inputs: bool = True, continue_on_error: bool = True):
        super().__init__()
        if picker is not None and spatials is not None:
            raise SpecError("give ExportPanel either a picker or spatials=, not both")
        self.picker = picker
        self._spatials = list(spatials) if spatials is not None else None
        self._names = list(names) if names is not None else None
        self._thread: Optional[threading.Thread] = None
        self._kwargs: Optional[Dict[str, Any]] = None
        self._cancel_event: Optional[threading.Event] = None
        self._bar = None
        self._last_draw = 0.0

        known = rs_embed.list_models()
        for m in models:
            if m not in known:
                raise ModelError(f"unknown model {m!r}; known models: {', '.join(known)}")
        self.models_w = W.SelectMultiple(options=known, value=tuple(models),
                                         rows=min(7, max(3, len(known))), layout=W.Layout(width="13em"))
        self.model_info = W.HTML(layout=W.Layout(flex="1 1 auto", width="auto"))
        self.model_info.add_class("rs-model-info")
        self.models_w.observe(lambda _: self._update_model_info(), names="value")

        # time
        if temporal is None:
            mode, start, end, year = "range", None, None, _dt.date.today().year - 1
        elif temporal.mode == "year":
            mode, start, end, year = "year", None, None, temporal.year
        else:
            mode, start, end, year = "range", temporal.start_date, temporal.end_date, temporal.start_date.year
        self.time_mode_w = _choice([("Date range", "range"), ("Year", "year"), ("None", "none")], mode)
        self.start_w = W.DatePicker(value=start, description="from", style=_SHORT,
                                    layout=W.Layout(width="13.5em"))
        self.end_w = W.DatePicker(value=end, description="to (excl.)", style=_SHORT,
                                  layout=W.Layout(width="15em"))
        self.year_w = W.BoundedIntText(value=year, min=1900, max=2200, layout=W.Layout(width="7em"))
        self.time_mode_w.observe(lambda _: self._update_time_widgets(), names="value")

        # output
        self.output_w = _choice([("Pooled vector", "pooled"), ("Grid (D×h×w)", "grid")], output)
        self.format_w = _choice([("NumPy .npz", "npz"), ("NetCDF .nc", "netcdf")], format)
        self.layout_w = _choice([("File per ROI", "per_item"), ("One file", "combined")], layout)
        self.out_w = W.Text(value=str(out), layout=W.Layout(width="30em"),
                            placeholder="a folder (file per ROI) or a file stem (one file)")

        # run settings
        from rs_embed.providers import list_providers

        backends = ["auto"] + [b for b in list_providers() if b != "auto"]
        if backend not in backends:
            raise SpecError(f"backend must be one of {backends}, got {backend!r}")
        self.backend_w = W.Dropdown(options=backends, value=backend, layout=W.Layout(width="12em"))
        self.device_w = W.Dropdown(options=["auto", "cpu", "cuda", "mps"], value=device,
                                   description="device", style=_SHORT, layout=W.Layout(width="13em"))
        self.input_prep_w = W.Dropdown(options=["resize", "tile", "auto"], value=input_prep,
                                       description="large ROIs", style=_SHORT,
                                       layout=W.Layout(width="14em"))
        self.chunk_w = W.BoundedIntText(value=chunk_size, min=1, max=100_000, layout=W.Layout(width="7em"))
        self.workers_w = W.BoundedIntText(value=num_workers, min=1, max=256, description="workers",
                                          style=_SHORT, layout=W.Layout(width="12em"))
        self.resume_w = W.Checkbox(value=resume, description="Resume (skip finished items)", indent=False)
        self.save_inputs_w = W.Checkbox(value=save_inputs, description="Save input patches", indent=False)
        self.continue_w = W.Checkbox(value=continue_on_error, indent=False,
                                     description="Keep going when an ROI fails")

        # actions and feedback
        self.export_button = W.Button(description="Export", icon="play", button_style="primary")
        self.export_button.add_class("rs-export-button")
        self.cancel_button = W.Button(description="Cancel", icon="stop", disabled=True)
        self.cancel_button.add_class("rs-cancel-button")
        self.code_button = W.Button(description="Show code", icon="code")
        self.export_button.on_click(lambda _: self.export())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.code_button.on_click(lambda _: self._show_code())
        self.message = W.HTML()
        self.message.add_class("rs-export-message")
        self.progress_box = W.VBox()
        self.progress_box.add_class("rs-export-progress")
        self.summary = W.HTML()
        self.summary.add_class("rs-export-summary")
        self.code_view = W.Textarea(layout=W.Layout(width="100%", height="14em", display="none"))

        self.children = [
            W.HTML("<b>Export embeddings</b>"),
            _row("Models", self.models_w, self.model_info),
            _row("Time", self.time_mode_w, self.start_w, self.end_w, self.year_w),
            _row("Output", self.output_w),
            _row("Format", self.format_w),
            _row("Layout", self.layout_w),
            _row("Path", self.out_w),
            _row("Backend", self.backend_w, self.device_w, self.input_prep_w),
            _row("Chunk size", self.chunk_w, self.workers_w),
            _row("", self.resume_w, self.save_inputs_w, self.continue_w),
            _row("", self.export_button, self.cancel_button, self.code_button),
            self.message, self.progress_box, self.summary, self.code_view,
        ]
        self.add_class("rs-export-panel")
        self._update_model_info()
        self._update_time_widgets()

    # ------------------------------------------------------------ form → call
    def _update_model_info(self) -> None:
        self.model_info.value = "<br><br>".join(describe_summary(m) for m in self.models_w.value) \
            or "<i>select one or more models</i>"

    def _update_time_widgets(self) -> None:
        mode = self.time_mode_w.value
        for w, show in ((self.start_w, mode == "range"), (self.end_w, mode == "range"),
                        (self.year_w, mode == "year")):
            w.layout.display = None if show else "none"

    def rois(self):
        """(spatials, names) the export will use, read now from the picker or the lists."""
        if self.picker is not None:
            return list(self.picker.spatials), list(self.picker.names)
        spatials = list(self._spatials or [])
        names = self._names
        if names is None:
            names = [f"roi_{i + 1:02d}" for i in range(len(spatials))]
        return spatials, list(names)

    def temporal(self) -> Optional[TemporalSpec]:
        mode = self.time_mode_w.value
        if mode == "none":
            return None
        if mode == "year":
            return TemporalSpec.year(int(self.year_w.value))
        if self.start_w.value is None or self.end_w.value is None:
            raise SpecError("pick both a start and an end date (or choose Year / None)")
        return TemporalSpec.range(self.start_w.value.isoformat(), self.end_w.value.isoformat())

    def export_kwargs(self) -> Dict[str, Any]:
        """The keyword arguments of ``export_batch`` this form stands for.

        Raises ``SpecError`` (with the reason) when the form is not a valid request.
        """
        spatials, names = self.rois()
        if not spatials:
            raise SpecError("no ROIs yet: click on the map (or pass spatials=) before exporting")
        for i, s in enumerate(spatials):
            if not isinstance(s, (PointBuffer, BBox)):
                raise SpecError(f"ROI {i} must be a PointBuffer or BBox, got {s!r}")
        if len(names) != len(spatials):
            raise SpecError(f"got {len(names)} names for {len(spatials)} ROIs")
        for n in names:
            check_name(n)
        check_unique(names)
        models = list(self.models_w.value)
        if not models:
            raise SpecError("select at least one model")
        out = self.out_w.value.strip()
        if not out:
            raise SpecError("give an output path")
        kwargs: Dict[str, Any] = dict(spatials=spatials)
        if self.layout_w.value == "per_item":
            kwargs["names"] = names  # file names; the one-file layout stores ROIs by index
        kwargs.update(
            temporal=self.temporal(),
            models=models,
            out=out,
            layout=self.layout_w.value,
            format=self.format_w.value,
            output=OutputSpec(self.output_w.value),
            backend=self.backend_w.value,
            device=self.device_w.value,
            input_prep=self.input_prep_w.value,
            save_inputs=bool(self.save_inputs_w.value),
            chunk_size=int(self.chunk_w.value),
            num_workers=int(self.workers_w.value),
            resume=bool(self.resume_w.value),
            continue_on_error=bool(self.continue_w.value),
        )
        return kwargs

    def code(self) -> str:
        """The ``export_batch`` call of :meth:`export_kwargs`, as code to paste in a cell."""
        kw = self.export_kwargs()
        spatials = kw.pop("spatials")
        names = {"export_batch", "OutputSpec"} | {type(sp).__name__ for sp in spatials}
        if kw["temporal"] is not None:
            names.add("TemporalSpec")
        lines = [f"from rs_embed import {', '.join(sorted(names))}", "", "spatials = ["]
        lines += [f"    {_spatial_source(sp)}," for sp in spatials]
        lines += ["]", "result = export_batch(", "    spatials=spatials,"]
        lines += [f"    {k}={_value_source(v)}," for k, v in kw.items()]
        lines += [")"]
        return "\n".join(lines) + "\n"

    def _show_code(self) -> None:
        try:
            self.code_view.value = self.code()
        except (RsEmbedError, ValueError) as exc:
            self._say(f"⚠ {escape(str(exc))}", error=True)
            return
        self.code_view.layout.display = None if self.code_view.layout.display == "none" else "none"

    # ------------------------------------------------------------------ running
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _say(self, html: str, error: bool = False) -> None:
        color = "#b00020" if error else "inherit"
        self.message.value = f"<span style='color:{color}'>{html}</span>" if html else ""

    def export(self) -> Optional[threading.Thread]:
        """Start the export in a background thread and return at once.

        Bad settings are shown in the panel (``status == "invalid"``) and nothing runs.
        """
        if self.running:
            self._say("an export is already running", error=True)
            return None
        try:
            kwargs = self.export_kwargs()
        except (RsEmbedError, ValueError) as exc:
            self.status, self.error = "invalid", str(exc)
            self._say(f"⚠ {escape(str(exc))}", error=True)
            return None
        from tqdm.notebook import tqdm

        self._cancel_event = threading.Event()
        self._bar = tqdm(total=1, desc="starting", display=False, leave=True)
        self.progress_box.children = [self._bar.container]
        self.summary.value = ""
        self.result, self.error = None, ""
        self._say("")
        self.status = "running"
        self.export_button.disabled = True
        self.cancel_button.disabled = False
        self._kwargs = kwargs
        self._thread = threading.Thread(target=self._run, args=(kwargs,), name="rs_embed export",
                                        daemon=True)
        self._thread.start()
        return self._thread

    def cancel(self) -> None:
        """Ask the running export to stop after the chunk in flight."""
        if self.running and self._cancel_event is not None:
            self._cancel_event.set()
            self.status = "cancelling"
            self.cancel_button.disabled = True
            self._say("stopping after the current chunk…")

    def wait(self, timeout: Optional[float] = None):
        """Block until the export finishes; returns ``result`` (None if it failed)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.result

    @property
    def location(self) -> Optional[str]:
        """Where the last export wrote (the file or folder ``load_export`` opens)."""
        if self.result is None or self._kwargs is None:
            return None
        return export_location(self.result, self._kwargs)

    def load(self):
        """``load_export`` of the last export."""
        if self.location is None:
            raise RuntimeError(f"no finished export to load (status {self.status!r})")
        return rs_embed.load_export(self.location)

    def _on_progress(self, done: int, total: int, desc: str = "") -> None:
        """``export_batch``'s progress callback (called from the export thread)."""
        bar = self._bar
        if bar is None:
            return
        now = time.monotonic()
        final = total and done >= total
        if not final and now - self._last_draw < 0.1:  # keep the comm traffic light
            return
        self._last_draw = now
        if bar.total != total:
            bar.reset(total=total)  # the first call: the real total, and the clock starts
        bar.n = done
        if desc:
            bar.set_description(desc, refresh=False)
        bar.refresh()

    def _run(self, kwargs: Dict[str, Any]) -> None:
        try:
            result = rs_embed.export_batch(**kwargs, show_progress=False,
                                           progress=self._on_progress, cancel=self._cancel_event)
        except Exception as exc:  # shown in the panel, never a traceback in the page
            self.error = f"{type(exc).__name__}: {exc}"
            self.status = "failed"
            self._say(f"⚠ export failed: {escape(self.error)}", error=True)
        else:
            self.result = result
            cancelled = self._cancel_event is not None and self._cancel_event.is_set()
            self.status = "cancelled" if cancelled else _overall_status(result)
            if not cancelled and self._bar is not None and self._bar.total:
                self._on_progress(self._bar.total, self._bar.total)
            self.summary.value = summary_html(result, kwargs, cancelled=cancelled)
            self._say("")
        finally:
            if self._bar is not None:
                self._bar.close()
            self.export_button.disabled = False
            self.cancel_button.disabled = True


def _manifests(result) -> List[dict]:
    if isinstance(result, dict):
        return [result]
    return [m for m in (result or []) if isinstance(m, dict)]


def _overall_status(result) -> str:
    statuses = {m.get("status") for m in _manifests(result)}
    if not statuses or statuses == {"ok"}:
        return "done"
    if statuses == {"failed"}:
        return "failed"
    return "partial"


def export_location(result, kwargs: Dict[str, Any]) -> Optional[str]:
    """What ``load_export`` opens for this export: the combined file or the per-item folder."""
    mans = _manifests(result)
    if isinstance(result, dict):
        return result.get("npz_path") or result.get("nc_path") or None
    for man in mans:
        path = man.get("npz_path") or man.get("nc_path") or man.get("manifest_path")
        if path:
            return os.path.dirname(path)
    return kwargs.get("out")


def _model_counts(mans: List[dict], n_items: int) -> Dict[str, Dict[str, Any]]:
    per_model: Dict[str, Dict[str, Any]] = {}
    for man in mans:
        for entry in man.get("models") or []:
            if not isinstance(entry, dict):
                continue
            name = entry.get("model", "?")
            counts = per_model.setdefault(name, {"ok": 0, "failed": 0, "errors": []})
            failed_idx = entry.get("failed_indices")
            if failed_idx is not None:  # combined manifest: one entry per model, all points
                counts["failed"] += len(failed_idx)
                counts["ok"] += max(0, int(man.get("n_items", n_items)) - len(failed_idx))
                for idx, err in (entry.get("errors_by_index") or {}).items():
                    counts["errors"].append(f"#{idx}: {_error_text(err)}")
            elif entry.get("status") == "ok":
                counts["ok"] += 1
            else:
                counts["failed"] += 1
            if entry.get("error") and failed_idx is None:
                where = man.get("name") or man.get("point_index", "")
                counts["errors"].append(f"{where}: {_error_text(entry['error'])}")
    return per_model


def _error_text(err) -> str:
    if isinstance(err, dict):
        return f"{err.get('type', 'Error')}: {err.get('message', '')}".strip()
    return str(err)


def summary_html(result, kwargs: Dict[str, Any], cancelled: bool = False) -> str:
    """What a person wants to read at the end: status, per-model counts, errors, where."""
    mans = _manifests(result)
    status = "cancelled: run it again with Resume to finish" if cancelled else _overall_status(result)
    n_items = len(kwargs.get("spatials") or [])
    per_model = _model_counts(mans, n_items)
    html = [f"<b>Export {escape(status)}</b> · {n_items} ROI(s)"]
    if per_model:
        rows = "".join(f"<tr><td>{escape(m)}</td><td>{c['ok']}</td><td>{c['failed']}</td></tr>"
                       for m, c in per_model.items())
        html.append("<style>.rs-export-summary td, .rs-export-summary th {padding: 0 1em 0 0;"
                    " text-align: left}</style>"
                    "<table><tr><th>model</th><th>ok</th><th>failed</th></tr>" + rows + "</table>")
    errors = [f"{m} {e}" for m, c in per_model.items() for e in c["errors"]]
    if errors:
        shown = "".join(f"<li>{escape(e)}</li>" for e in errors[:8])
        more = f"<li>… {len(errors) - 8} more</li>" if len(errors) > 8 else ""
        html.append(f"errors:<ul>{shown}{more}</ul>")
    where = export_location(result, kwargs)
    if where:
        html.append(f"files: <code>{escape(where)}</code> — open with "
                    f"<code>load_export({escape(repr(where))})</code>")
    return "".join(html)
