"""A form that turns into an ``export_batch`` call, runs it without blocking the kernel,
and tells the truth about it before, during and after.

The panel's only product is the keyword arguments a person would pass to
``rs_embed.export_batch`` (:meth:`ExportPanel.export_kwargs`, and the same call as
source code in :meth:`ExportPanel.code`). Before a run it shows each selected model's
readiness (:func:`rs_embed.check_models`: libraries, weights, backend, sensor,
credentials) and says why *Export* is disabled; ROIs outside the imagery are marked on
the linked picker. *Export* hands the call to ``export_batch`` in a background thread:
the notebook stays usable, the bar counts points and turns amber or red as points fail,
and *Cancel* stops the run after the chunk in flight, leaving files that
``resume=True`` completes. After it: a summary by status read back through
``load_export``, one collapsible error per distinct cause, mostly-nodata warnings, the
ROIs coloured on the map, and download links that work in Voila too.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
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
                 save_inputs: bool = True, continue_on_error: bool = True,
                 allow_download: bool = False):
        super().__init__()
        self.allow_download = bool(allow_download)
        self._ready_cache: Dict[tuple, list] = {}
        self._names_used: List[str] = []
        self.loaded = None
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

        # run settings: every registered backend, plug-ins included
        backends = rs_embed.list_backends()
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
        self.readiness = W.HTML()
        self.readiness.add_class("rs-readiness")
        self.disabled_reason = W.HTML()
        self.disabled_reason.add_class("rs-export-disabled")
        self.live = W.HTML()
        self.live.add_class("rs-export-live")
        self.downloads = W.HTML()
        self.downloads.add_class("rs-export-downloads")
        # what comes after an export: search and probe the result on the same map
        self.explore_button = W.Button(description="Similarity search", icon="search")
        self.explore_button.add_class("rs-explore-button")
        self.explore_button.on_click(lambda _: self._open(self.open_explorer))
        self.probe_button = W.Button(description="Label and probe", icon="tags")
        self.probe_button.add_class("rs-probe-button")
        self.probe_button.on_click(lambda _: self._open(self.open_probe))
        self.next_steps = W.HBox([self.explore_button, self.probe_button], layout=W.Layout(display="none"))
        self.tools = W.VBox()
        self.tools.add_class("rs-export-tools")

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
            _row("Readiness", self.readiness),
            _row("", self.export_button, self.cancel_button, self.code_button),
            self.disabled_reason, self.message, self.progress_box, self.live, self.summary,
            self.downloads, self.next_steps, self.tools, self.code_view,
        ]
        self.add_class("rs-export-panel")
        self._update_model_info()
        self._update_time_widgets()
        for w in (self.models_w, self.backend_w, self.time_mode_w, self.start_w, self.end_w,
                  self.year_w, self.out_w, self.layout_w):
            w.observe(lambda _: self.refresh(), names="value")
        if picker is not None:
            picker.observe(lambda _: self.refresh(), names=["rois", "coverage"])
        self.refresh()

    # ------------------------------------------------------------ form → call
    def _update_model_info(self) -> None:
        self.model_info.value = "<br><br>".join(describe_summary(m) for m in self.models_w.value) \
            or "<i>select one or more models</i>"

    def _update_time_widgets(self) -> None:
        mode = self.time_mode_w.value
        for w, show in ((self.start_w, mode == "range"), (self.end_w, mode == "range"),
                        (self.year_w, mode == "year")):
            w.layout.display = None if show else "none"

    # --------------------------------------------------------------- readiness
    def readiness_report(self) -> list:
        """:func:`rs_embed.check_models` for the selected models and backend (cached); for
        ``"auto"`` with the ROIs and window, so it names the backend the export will use."""
        request: Dict[str, Any] = {}
        if self.backend_w.value == "auto":
            try:
                spatials, _ = self.rois()
                request = {"spatials": spatials or None, "temporal": self.temporal()}
            except (RsEmbedError, ValueError):
                request = {}
        key = (tuple(self.models_w.value), self.backend_w.value, self.allow_download,
               repr(sorted(request.items())))
        if key not in self._ready_cache:
            try:
                self._ready_cache[key] = rs_embed.check_models(list(key[0]), backend=key[1],
                                                               allow_download=self.allow_download,
                                                               **request)
            except (RsEmbedError, ValueError, OSError) as exc:
                self._ready_cache[key] = [exc]
        return self._ready_cache[key]

    def blockers(self) -> List[str]:
        """Why Export cannot run now (empty when it can): the form, then each model."""
        out = []
        try:
            self.export_kwargs()
        except (RsEmbedError, ValueError) as exc:
            out.append(str(exc))
        for r in self.readiness_report():
            if isinstance(r, Exception):
                out.append(f"readiness could not be checked: {r}")
            else:
                out.extend(f"{r.model}: {p}" for p in r.problems)
        return out

    def refresh(self) -> None:
        """Recheck readiness and the form; enable Export or say why it is disabled."""
        report = self.readiness_report()
        self.readiness.value = readiness_html(report)
        if self.picker is not None:
            try:
                temporal = self.temporal()
            except (RsEmbedError, ValueError):
                temporal = None
            models = list(self.models_w.value)
            self.picker.check_imagery(self.backend_w.value, temporal=temporal,
                                      model=models[0] if models else None)
        reasons = self.blockers()
        notes = []
        if self.picker is not None and self.picker.outside:
            out = self.picker.outside
            notes.append(f"⚠ {len(out)} ROI(s) lie partly or wholly outside the imagery of backend "
                         f"{self.backend_w.value!r}: {', '.join(out[:6])}{' …' if len(out) > 6 else ''}; "
                         "their points will fail or be mostly nodata")
        if self.running and threading.current_thread() is not self._thread:
            self.export_button.disabled = True
        else:
            self.export_button.disabled = bool(reasons)
        self.export_button.tooltip = "; ".join(reasons) if reasons else "export the ROIs"
        html = []
        if reasons:
            items = "".join(f"<li>{escape(r)}</li>" for r in reasons)
            html.append(f"<div style='color:#b00020'><b>Export is disabled:</b><ul style='margin:2px 0'>"
                        f"{items}</ul></div>")
        html += [f"<div style='color:#b26a00'>{escape(n)}</div>" for n in notes]
        self.disabled_reason.value = f"<div style='{_WRAP}'>{''.join(html)}</div>" if html else ""

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
            self.refresh()
            return None
        blockers = self.blockers()
        if blockers:
            self.status, self.error = "invalid", blockers[0]
            self._say("⚠ not ready: " + escape("; ".join(blockers)), error=True)
            self.refresh()
            return None
        from tqdm.notebook import tqdm

        n = len(kwargs["spatials"])
        self._cancel_event = threading.Event()
        self._bar = tqdm(total=n, desc="starting", display=False, leave=True)
        self.progress_box.children = [self._bar.container]
        self.summary.value = self.downloads.value = self.live.value = ""
        self.next_steps.layout.display = "none"
        self.result, self.error, self.loaded = None, "", None
        self._names_used = list(kwargs.get("names") or self.rois()[1])
        self._failed = 0
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

    def _on_progress(self, done: int, total: int, desc: str = "", failed: int = 0) -> None:
        """``export_batch``'s progress callback (called from the export thread); ``failed``
        counts the points so far with a failed model."""
        bar = self._bar
        if bar is None:
            return
        now = time.monotonic()
        final = total and done >= total
        newly_failed = failed != getattr(self, "_failed", 0)
        self._failed = failed
        if not final and not newly_failed and now - self._last_draw < 0.1:  # light comm traffic
            return
        self._last_draw = now
        if bar.total != total or bar.desc == "starting":
            bar.reset(total=total)  # the first call: the real total, and the clock starts
        bar.n = done
        label = desc or "export"
        if failed:
            label += f" · {failed} failed"
        bar.set_description(label, refresh=False)
        bar.refresh()
        if failed:
            _bar_style(bar, "danger" if failed >= done else "warning")
        self.live.value = (f"<span style='color:{'#b00020' if failed >= done else '#b26a00'}'>"
                           f"{failed} of {done} point(s) so far have a failed model</span>" if failed else "")

    def _run(self, kwargs: Dict[str, Any]) -> None:
        style = "danger"
        try:
            result = rs_embed.export_batch(**kwargs, show_progress=False,
                                           progress=self._on_progress, cancel=self._cancel_event)
        except Exception as exc:  # shown in the panel, never a traceback in the page
            self.error = f"{type(exc).__name__}: {exc}"
            self.status = "failed"
            if self._bar is not None:  # not "starting 0/1": say that it stopped
                self._bar.set_description("failed", refresh=False)
                self._bar.refresh()
            self._say(f"⚠ export failed: <div style='{_WRAP}'>{escape(self.error)}</div>", error=True)
        else:
            self.result = result
            cancelled = self._cancel_event is not None and self._cancel_event.is_set()
            self.status = "cancelled" if cancelled else _overall_status(result)
            if not cancelled and self._bar is not None and self._bar.total:
                self._on_progress(self._bar.total, self._bar.total, "export", self._failed)
            self.loaded = self._load_quietly()
            self.summary.value = summary_html(result, kwargs, cancelled=cancelled, loaded=self.loaded,
                                              names=self._names_used)
            style = {"done": "success", "partial": "warning", "cancelled": "warning"}.get(self.status, "danger")
            self._mark_picker()
            self._offer_downloads()
            has_vectors = self.loaded is not None and any(
                r.embeddings is not None for r in self.loaded.models.values())
            self.next_steps.layout.display = None if has_vectors else "none"
            self._say("")
        finally:
            if self._bar is not None:
                self._bar.close()
                _bar_style(self._bar, style)
            self.cancel_button.disabled = True
            self.refresh()

    def open_explorer(self, **kwargs):
        """A :class:`SimilarityExplorer` over the last export, on the picker's map."""
        from .explorer import SimilarityExplorer

        tool = SimilarityExplorer(self.load(), self.picker, names=self._names_for_tools(), **kwargs)
        self.tools.children = [c for c in self.tools.children if not isinstance(c, SimilarityExplorer)] + [tool]
        return tool

    def open_probe(self, **kwargs):
        """A :class:`ProbePanel` over the last export (labels from the ROI names to start)."""
        from .probe_panel import ProbePanel

        kwargs.setdefault("labels", "names")
        tool = ProbePanel(self.load(), self.picker, names=self._names_for_tools(), **kwargs)
        self.tools.children = [c for c in self.tools.children if not isinstance(c, ProbePanel)] + [tool]
        return tool

    def _names_for_tools(self):
        res_names = getattr(self.loaded, "names", None)
        if res_names:
            return None
        return self._names_used if self.loaded is not None and len(self._names_used) == self.loaded.n_items else None

    def _open(self, fn) -> None:
        try:
            fn()
        except (RsEmbedError, ValueError, KeyError, RuntimeError) as exc:
            self._say(f"⚠ {escape(str(exc))}", error=True)

    def _load_quietly(self):
        try:
            return rs_embed.load_export(self.location, inputs=False) if self.location else None
        except Exception:  # the summary falls back to the manifests export_batch returned
            return None

    def _mark_picker(self) -> None:
        if self.picker is None or self.loaded is None:
            return
        outcome = point_outcomes(self.loaded)
        names = self._names_used if len(self._names_used) == len(outcome) else []
        self.picker.mark_status({n: outcome[i] for i, n in enumerate(names)})

    def _offer_downloads(self) -> None:
        from .downloads import downloads_html

        try:
            self.downloads.value = downloads_html(self.location) if self.location else ""
        except (OSError, ValueError) as exc:
            self.downloads.value = f"download: not available ({escape(str(exc))})"


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


#: a patch with at least this share of nodata pixels is reported (as the core warns)
MOSTLY_NODATA = 0.5
#: CSS that keeps long messages inside the panel
_WRAP = "white-space:normal;overflow-wrap:anywhere;max-width:60em"
_ICON = {True: ("✓", "#2e7d32"), False: ("✗", "#b00020"), None: ("!", "#b26a00")}


def _bar_style(bar, style: str) -> None:
    """Colour a tqdm notebook bar: ``success``, ``warning`` or ``danger``."""
    try:
        bar.container.children[1].bar_style = style
    except (AttributeError, IndexError):
        pass


def readiness_html(report) -> str:
    """One line per model: a mark per check (hover for the detail), the problems spelt out."""
    if not report:
        return "<i>select one or more models</i>"
    lines = []
    for r in report:
        if isinstance(r, Exception):
            lines.append(f"<span style='color:#b00020'>readiness could not be checked: {escape(str(r))}</span>")
            continue
        marks = " ".join(f"<span title='{escape(c.detail)}' style='color:{_ICON[c.ok][1]}'>"
                         f"{_ICON[c.ok][0]} {escape(c.name)}</span>" for c in r.checks)
        head = (f"<b>{escape(r.model)}</b> on <code>{escape(r.backend)}</code>: "
                + ("<span style='color:#2e7d32'>ready</span>" if r.ready else
                   "<span style='color:#b00020'>not ready</span>"))
        body = "".join(f"<li>{escape(p)}</li>" for p in r.problems + r.warnings)
        lines.append(f"<div class='rs-readiness-model' data-model='{escape(r.model)}' "
                     f"data-ready='{str(r.ready).lower()}' style='{_WRAP}'>{head} · {marks}"
                     + (f"<ul style='margin:2px 0'>{body}</ul>" if body else "") + "</div>")
    return "".join(lines)


def _error_text(err) -> str:
    if isinstance(err, dict):
        return f"{err.get('type', 'Error')}: {err.get('message', '')}".strip()
    return str(err)


_NUMBER = re.compile(r"-?\d+(\.\d+)?(e-?\d+)?")


def cause_key(text: str) -> str:
    """What two error messages have in common when they differ only in numbers
    (coordinates, indices, sizes): the same cause."""
    return _NUMBER.sub("#", text)


def _errors(mans: List[dict], names: Sequence[str]) -> List[tuple]:
    """(model, item name, error text) of every failed point of every model."""
    out = []
    for man in mans:
        for entry in man.get("models") or []:
            if not isinstance(entry, dict):
                continue
            model = entry.get("model", "?")
            by_index = entry.get("errors_by_index")
            if by_index:  # combined manifest: one entry per model, all points
                for idx, err in by_index.items():
                    i = int(idx)
                    out.append((model, names[i] if i < len(names) else f"#{i}", _error_text(err)))
            elif entry.get("error") and entry.get("status") != "ok":
                where = man.get("name") or f"#{man.get('point_index', '?')}"
                out.append((model, str(where), _error_text(entry["error"])))
        if not man.get("models") and man.get("error"):
            out.append(("export", "run", _error_text(man["error"])))
    return out


def _model_counts(mans: List[dict], n_items: int) -> Dict[str, Dict[str, int]]:
    per_model: Dict[str, Dict[str, int]] = {}
    for man in mans:
        for entry in man.get("models") or []:
            if not isinstance(entry, dict):
                continue
            counts = per_model.setdefault(entry.get("model", "?"), {"ok": 0, "failed": 0, "nodata": 0})
            failed_idx = entry.get("failed_indices")
            if failed_idx is not None:  # combined manifest
                counts["failed"] += len(failed_idx)
                counts["ok"] += max(0, int(man.get("n_items", n_items)) - len(failed_idx))
            elif entry.get("status") == "ok":
                counts["ok"] += 1
            else:
                counts["failed"] += 1
    return per_model


def nodata_fractions(loaded) -> Dict[str, List[Optional[float]]]:
    """Per model, the nodata share of each point's input (None where unknown or failed),
    read from the metadata ``load_export`` returns."""
    out = {}
    for m, mr in loaded.models.items():
        fr = []
        for meta in (mr.meta or []):
            patch = (meta or {}).get("input") if isinstance(meta, dict) else None
            v = patch.get("nodata_fraction") if isinstance(patch, dict) else None
            fr.append(float(v) if isinstance(v, (int, float)) else None)
        out[m] = fr + [None] * (loaded.n_items - len(fr))
    return out


def point_outcomes(loaded) -> List[str]:
    """Per point: ``failed`` (some model failed), ``nodata`` (an input mostly nodata) or ``ok``."""
    out = ["ok"] * loaded.n_items
    nod = nodata_fractions(loaded)
    for m, mr in loaded.models.items():
        failed = set(mr.failed_indices or [])
        if mr.status == "failed" and not failed:
            failed = set(range(loaded.n_items))
        for i in range(loaded.n_items):
            if i in failed or (mr.meta and i < len(mr.meta) and not mr.meta[i]):
                out[i] = "failed"
            elif out[i] == "ok" and (nod[m][i] or 0.0) >= MOSTLY_NODATA:
                out[i] = "nodata"
    return out


def summary_html(result, kwargs: Dict[str, Any], cancelled: bool = False, loaded=None,
                 names: Optional[Sequence[str]] = None) -> str:
    """What a person wants to read at the end: the status, counts by model and status,
    one collapsible entry per distinct error cause, mostly-nodata inputs, where."""
    mans = _manifests(result)
    status = _overall_status(result)
    n_items = len(kwargs.get("spatials") or [])
    names = list(names or kwargs.get("names") or [f"#{i}" for i in range(n_items)])
    per_model = _model_counts(mans, n_items)
    nod = nodata_fractions(loaded) if loaded is not None else {}
    for m, fr in nod.items():
        if m in per_model:
            per_model[m]["nodata"] = sum(1 for v in fr if v is not None and v >= MOSTLY_NODATA)
    outcome = point_outcomes(loaded) if loaded is not None else None
    n_ok = outcome.count("ok") + outcome.count("nodata") if outcome else \
        sum(1 for m in mans for e in (m.get("models") or []) if e.get("status") == "ok")
    color = {"done": "#2e7d32", "partial": "#b26a00"}.get(status, "#b00020")
    head = "cancelled: run it again with Resume to finish" if cancelled else status
    html = [f"<div class='rs-summary-head' data-status='{escape(status)}'><b style='color:{color}'>"
            f"Export {escape(head)}</b> · {n_ok} of {n_items} ROI(s) exported</div>"]
    if per_model:
        rows = "".join(f"<tr><td>{escape(m)}</td><td>{c['ok']}</td><td>{c['failed']}</td>"
                       f"<td>{c['nodata']}</td></tr>" for m, c in per_model.items())
        html.append("<style>.rs-export-summary td, .rs-export-summary th {padding: 0 1em 0 0;"
                    " text-align: left}</style>"
                    "<table><tr><th>model</th><th>ok</th><th>failed</th><th>mostly nodata</th></tr>"
                    + rows + "</table>")
    groups: Dict[str, Dict[str, Any]] = {}
    for model, where, text in _errors(mans, names):
        g = groups.setdefault(cause_key(text), {"text": text, "models": [], "items": []})
        if model not in g["models"]:
            g["models"].append(model)
        g["items"].append(where)
    for g in groups.values():
        items = list(dict.fromkeys(g["items"]))
        first = g["text"].split(". ")[0]
        short = first if len(first) <= 140 else first[:137] + "…"
        who = ", ".join(items[:8]) + (f" and {len(items) - 8} more" if len(items) > 8 else "")
        html.append(f"<details class='rs-error-cause' style='{_WRAP}'><summary><span style='color:#b00020'>"
                    f"{escape(short)}</span> — {len(items)} ROI(s), {escape(', '.join(g['models']))}"
                    f"</summary><div style='margin-left:1em'>ROIs: {escape(who)}<pre style='white-space:"
                    f"pre-wrap;overflow-wrap:anywhere'>{escape(g['text'])}</pre></div></details>")
    warned = []
    for m, fr in nod.items():
        for i, v in enumerate(fr):
            if v is not None and v >= MOSTLY_NODATA:
                warned.append(f"{names[i] if i < len(names) else f'#{i}'} ({m}: {v:.0%})")
    if warned:
        html.append(f"<details class='rs-nodata-warning' style='{_WRAP}' open><summary style='color:#b26a00'>"
                    f"⚠ {len(warned)} input(s) are mostly nodata (filled): their embeddings describe "
                    f"fill, not the place</summary>{escape(', '.join(warned))}</details>")
    where = export_location(result, kwargs)
    if where:
        html.append(f"<div>files: <code>{escape(where)}</code> — open with "
                    f"<code>load_export({escape(repr(where))})</code></div>")
    return "".join(html)
