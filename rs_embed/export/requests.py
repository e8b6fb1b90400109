"""The request objects of ``export_batch`` and the checks of every argument.

Everything here runs before any imagery is fetched: a bad argument raises
``SpecError`` (or ``ModelError`` for model names and options) naming the argument and
its value. ``ExportTarget``, ``ExportConfig`` and ``ExportModelRequest`` are optional
sugar over the keyword arguments; both spellings end in the same checks.
"""

from __future__ import annotations

import dataclasses
import math
import ntpath
import os
import pathlib
import unicodedata
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ModelError, SpecError
from ..io.keys import COMBINED_ONLY, EXTENSIONS, EXTRAS, FORMATS, RUN_MANIFEST
from ..providers.base import DEFAULT_FETCH_TIMEOUT_S
from ..specs import FetchSpec, InputPrepSpec, SensorSpec

LAYOUTS = ("per_item", "combined")

#: default of ``export_batch(max_patch_mb=...)``: the largest input patch (width x height
#: x bands x 4 bytes of float32) one point may need, in MiB. It stops a request such as a
#: 500 km buffer at 10 m (hundreds of GiB) before anything is fetched or written.
DEFAULT_MAX_PATCH_MB = 1024.0


# --------------------------------------------------------------------- primitives


def check_bool(name: str, value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise SpecError(f"{name} must be True or False, got {value!r}")


def check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise SpecError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise SpecError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


def check_positive_float(name: str, value: Any, unit: str = "seconds") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)) or value <= 0:
        raise SpecError(f"{name} must be a number of {unit} > 0, got {value!r}")
    return float(value)


def check_non_negative_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)) or value < 0:
        raise SpecError(f"{name} must be a number of seconds >= 0, got {value!r}")
    return float(value)


def check_format(value: Any) -> str:
    if value not in FORMATS:
        hint = " (NetCDF is spelled 'netcdf')" if str(value).lower() in ("nc", "netcdf4", "netcdf") else ""
        if str(value).lower() in ("geoparquet", "pq"):
            hint = " (GeoParquet is spelled 'parquet')"
        raise SpecError(f"format must be 'npz', 'netcdf', 'parquet' or 'zarr', got {value!r}{hint}")
    return value


#: the modules each optional format imports (checked before any work starts)
_FORMAT_MODULES = {"parquet": ("pyarrow", "shapely", "geopandas"), "zarr": ("zarr", "xarray")}


def check_format_installed(fmt: str) -> None:
    """An ``ImportError`` naming the extra when an optional format's libraries are missing."""
    import importlib.util

    missing = [m for m in _FORMAT_MODULES.get(fmt, ()) if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"format={fmt!r} needs {', '.join(missing)}: pip install 'rs_embed[{EXTRAS[fmt]}]'")


def check_layout(value: Any) -> str:
    if value not in LAYOUTS:
        raise SpecError(f"layout must be 'per_item' or 'combined', got {value!r}")
    return value


def check_path(name: str, value: Any) -> str:
    """A usable path: a non-empty string (or os.PathLike) without NUL bytes."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, bytes):
        raise SpecError(f"{name} must be a str path, got bytes {value!r}")
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{name} must be a non-empty path, got {value!r}")
    if "\x00" in value:
        raise SpecError(f"{name}={value!r} contains a NUL byte, which no file system accepts")
    return value


_check_path = check_path
_UNSAFE_CHARS = set('/\\:*?"<>|')


def _is_reserved(file_name: str) -> bool:
    """Whether Windows reserves ``file_name`` for a device (``CON``, ``aux.npz``, ``COM1``...)."""
    check = getattr(ntpath, "isreserved", None)  # Python >= 3.13
    if check is not None:
        return bool(check(file_name))
    return pathlib.PureWindowsPath(file_name).is_reserved()


def name_key(value: str) -> str:
    """The key two names collide on: one file on common file systems (NFC and NFD forms of
    a letter are one name on macOS, case differences one name on macOS and Windows)."""
    return unicodedata.normalize("NFC", value).casefold()


def check_item_name(value: Any, where: str) -> str:
    """A per-item file stem that is safe on every OS and cannot escape ``out_dir``.

    Returned in Unicode NFC form, the form the files are written under.
    """
    if not isinstance(value, str):
        raise SpecError(f"{where} must be a string, got {type(value).__name__}: {value!r}")
    if not value:
        raise SpecError(f"{where} must not be empty")
    value = unicodedata.normalize("NFC", value)
    bad = sorted({c for c in value if c in _UNSAFE_CHARS})
    if bad:
        raise SpecError(f"{where}={value!r} is not a safe file name: it contains {''.join(bad)!r}")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in value):
        raise SpecError(f"{where}={value!r} is not a safe file name: it contains control characters")
    if value in (".", "..") or value.startswith("."):
        raise SpecError(f"{where}={value!r} is not a safe file name: it must not start with '.'")
    if value != value.strip() or value.endswith("."):
        raise SpecError(f"{where}={value!r} is not a safe file name: no leading/trailing spaces or trailing '.'")
    if len(value.encode("utf-8")) > 200:
        raise SpecError(f"{where} is too long for a file name ({len(value)} characters; at most 200 bytes)")
    if value.lower() == os.path.splitext(RUN_MANIFEST)[0]:
        raise SpecError(f"{where}={value!r} is reserved for the export's own manifest")
    if _is_reserved(value + ".npz"):
        raise SpecError(f"{where}={value!r} is a device name Windows reserves (CON, PRN, AUX, NUL, "
                        "COM1-9, LPT1-9, with any extension): the file could not be created there")
    return value


def check_names(names: Any, n_items: int) -> List[str]:
    if isinstance(names, (str, bytes)) or not isinstance(names, Sequence):
        raise SpecError(f"names must be a list of file names, got {names!r}")
    if len(names) != n_items:
        raise SpecError(f"names must have one entry per spatial: got {len(names)} names for {n_items} spatials")
    out = [check_item_name(v, f"names[{i}]") for i, v in enumerate(names)]
    seen: Dict[str, int] = {}
    for i, v in enumerate(out):
        key = name_key(v)
        if key in seen:
            j = seen[key]
            a, b = names[j], names[i]
            same_text = a != b and unicodedata.normalize("NFC", a) == unicodedata.normalize("NFC", b)
            looks = f" (code points {ascii(a)} and {ascii(b)})" if same_text else ""
            raise SpecError(f"names must be unique: names[{j}]={a!r} and names[{i}]={b!r}{looks} "
                            "name the same file (names are compared in Unicode NFC form, ignoring case, "
                            "as macOS and Windows do)")
        seen[key] = i
    return out


# ---------------------------------------------------------------- request objects


@dataclass(frozen=True)
class ExportModelRequest:
    """One model of an export with its own sensor, fetch policy, modality or options.

    ``ExportModelRequest.configure("rcf", dim=256)`` reads better than building
    ``model_config`` by hand.
    """

    name: str
    sensor: Optional[SensorSpec] = None
    fetch: Optional[FetchSpec] = None
    modality: Optional[str] = None
    model_config: Optional[Dict[str, Any]] = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise ModelError(f"ExportModelRequest.name must be a model name, got {self.name!r}")
        if self.sensor is not None and not isinstance(self.sensor, SensorSpec):
            raise ModelError(f"ExportModelRequest.sensor must be a SensorSpec, got {self.sensor!r}")
        if self.fetch is not None and not isinstance(self.fetch, FetchSpec):
            raise ModelError(f"ExportModelRequest.fetch must be a FetchSpec, got {self.fetch!r}")
        if self.sensor is not None and self.fetch is not None:
            raise ModelError(f"ExportModelRequest({self.name!r}) takes sensor= or fetch=, not both")
        if self.model_config is not None and not isinstance(self.model_config, dict):
            raise ModelError(f"ExportModelRequest.model_config must be a dict, got {self.model_config!r}")

    @classmethod
    def configure(cls, name: str, *, sensor: Optional[SensorSpec] = None,
                  fetch: Optional[FetchSpec] = None, modality: Optional[str] = None,
                  **model_kwargs: Any) -> "ExportModelRequest":
        return cls(name=name, sensor=sensor, fetch=fetch, modality=modality,
                   model_config=dict(model_kwargs) or None)


@dataclass(frozen=True)
class ExportTarget:
    """Where an export goes: ``ExportTarget.combined("run")`` or ``.per_item("dir", names=...)``."""

    layout: str
    path: str
    names: Optional[Tuple[str, ...]] = None

    def __post_init__(self):
        check_layout(self.layout)
        object.__setattr__(self, "path", _check_path("ExportTarget.path", self.path))
        if self.names is not None:
            if self.layout != "per_item":
                raise SpecError("ExportTarget.names only apply to the per_item layout")
            if isinstance(self.names, (str, bytes)) or not isinstance(self.names, Sequence):
                raise SpecError(f"ExportTarget.names must be a list of file names, got {self.names!r}")
            object.__setattr__(self, "names", tuple(self.names))

    @classmethod
    def combined(cls, path: str) -> "ExportTarget":
        return cls("combined", path)

    @classmethod
    def per_item(cls, out_dir: str, *, names: Optional[Sequence[str]] = None) -> "ExportTarget":
        return cls("per_item", out_dir, None if names is None else tuple(names))

    # names of the public rs-embed
    @property
    def out_file(self) -> Optional[str]:
        return self.path if self.layout == "combined" else None

    @property
    def out_dir(self) -> Optional[str]:
        return self.path if self.layout == "per_item" else None


@dataclass(frozen=True)
class ExportConfig:
    """How an export runs (what to save, concurrency, faults, resume); defaults as ``export_batch``."""

    format: str = "npz"
    save_inputs: bool = True
    save_embeddings: bool = True
    save_manifest: bool = True
    fail_on_bad_input: bool = False
    chunk_size: int = 16
    num_workers: int = 8
    continue_on_error: bool = False
    max_retries: int = 0
    retry_backoff_s: float = 0.0
    async_write: bool = True
    writer_workers: int = 2
    resume: bool = False
    show_progress: bool = True
    input_prep: Any = "resize"
    fetch_timeout_s: float = DEFAULT_FETCH_TIMEOUT_S
    max_patch_mb: float = DEFAULT_MAX_PATCH_MB

    def __post_init__(self):
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        checked = check_run_options(**values, where="ExportConfig.")
        for k, v in checked.items():
            object.__setattr__(self, k, v)


def check_run_options(*, where: str = "", **opts: Any) -> Dict[str, Any]:
    """Validate the run options shared by ``export_batch`` and ``ExportConfig``."""
    out = dict(opts)
    out["format"] = _prefixed(where, check_format, opts["format"])
    for k in ("save_inputs", "save_embeddings", "save_manifest", "fail_on_bad_input",
              "continue_on_error", "async_write", "resume", "show_progress"):
        out[k] = check_bool(where + k, opts[k])
    for k in ("chunk_size", "num_workers", "writer_workers"):
        out[k] = check_positive_int(where + k, opts[k])
    out["max_retries"] = check_non_negative_int(where + "max_retries", opts["max_retries"])
    out["retry_backoff_s"] = check_non_negative_float(where + "retry_backoff_s", opts["retry_backoff_s"])
    out["fetch_timeout_s"] = check_positive_float(where + "fetch_timeout_s", opts["fetch_timeout_s"])
    out["max_patch_mb"] = check_positive_float(where + "max_patch_mb", opts["max_patch_mb"], "MiB")
    out["input_prep"] = InputPrepSpec.coerce(opts["input_prep"], where + "input_prep") or InputPrepSpec.resize()
    if out["resume"] and not out["save_manifest"]:
        raise SpecError(
            f"{where}resume=True needs save_manifest=True: the manifest records the request "
            "fingerprint that tells a finished artifact from a stale one")
    return out


def _prefixed(where: str, check, value):
    try:
        return check(value)
    except SpecError as exc:
        if where:
            raise SpecError(f"{where}{exc}") from None
        raise


# ------------------------------------------------------------------------ target


@dataclass(frozen=True)
class ResolvedTarget:
    layout: str
    path: str  # out_dir (per_item) or the array file (combined)
    names: Optional[List[str]]


def resolve_target(*, out, layout, out_dir, out_path, names, target, fmt: str,
                   n_items: int) -> ResolvedTarget:
    legacy = [k for k, v in (("out_dir", out_dir), ("out_path", out_path)) if v is not None]
    modern = [k for k, v in (("out", out), ("layout", layout)) if v is not None]
    if target is not None:
        if not isinstance(target, ExportTarget):
            raise SpecError(f"target must be an ExportTarget, got {type(target).__name__}: {target!r}")
        if legacy or modern:
            raise SpecError(f"pass the output either as target= or as {'/'.join(modern + legacy)}=, not both")
        if names is not None and target.names is not None:
            raise SpecError("names given twice: in target=ExportTarget.per_item(names=...) and as names=")
        layout, path = target.layout, target.path
        names = target.names if target.names is not None else names
    elif modern:
        if legacy:
            raise SpecError(f"do not mix out/layout with {' and '.join(legacy)}: use out=... with "
                            "layout='per_item' or 'combined' (or only the legacy out_dir / out_path)")
        if out is None:
            raise SpecError(f"layout={layout!r} needs out=... (the output folder or file)")
        if layout is None:
            raise SpecError(f"out={out!r} needs layout='per_item' (one file per point) or 'combined' (one file)")
        layout = check_layout(layout)
        path = _check_path("out", out)
    elif len(legacy) == 2:
        raise SpecError("pass only one of out_dir (one file per point) and out_path (one combined file)")
    elif out_dir is not None:
        layout, path = "per_item", _check_path("out_dir", out_dir)
    elif out_path is not None:
        layout, path = "combined", _check_path("out_path", out_path)
    else:
        raise SpecError("no output given: pass out=... with layout='per_item' or 'combined' "
                        "(or the legacy out_dir= / out_path=)")
    path = os.path.expanduser(path)
    if fmt in COMBINED_ONLY and layout != "combined":
        raise SpecError(f"format={fmt!r} writes one file for the whole run: it needs layout='combined' "
                        f"(out=..., layout='combined'), got layout={layout!r}")
    if fmt in COMBINED_ONLY:
        check_format_installed(fmt)
    if layout == "combined":
        if names is not None:
            raise SpecError("names only apply to the per_item layout (out_dir / layout='per_item'); "
                            "a combined export is one file")
        ext = EXTENSIONS[fmt]
        low = path.lower()
        other = [e for f, e in EXTENSIONS.items() if f != fmt and low.endswith(e)]
        if other:
            raise SpecError(f"output {path!r} ends with {other[0]!r} but format={fmt!r} writes {ext!r} files")
        if not low.endswith(ext):
            path += ext
        if os.path.isdir(path) and fmt != "zarr":  # a Zarr store is a folder
            raise SpecError(f"output {path!r} is a directory; a combined export is one file")
        if fmt == "zarr" and os.path.lexists(path) and not os.path.isdir(path):
            raise SpecError(f"output {path!r} exists and is not a folder; a Zarr store is a folder")
        return ResolvedTarget("combined", path, None)
    if os.path.exists(path) and not os.path.isdir(path):
        raise SpecError(f"out_dir {path!r} exists and is not a directory")
    return ResolvedTarget("per_item", path, None if names is None else check_names(names, n_items))


__all__ = ["ExportTarget", "ExportConfig", "ExportModelRequest", "ResolvedTarget", "LAYOUTS",
           "check_run_options", "resolve_target", "check_names", "check_item_name", "check_path",
           "name_key", "DEFAULT_MAX_PATCH_MB", "check_format_installed"]
