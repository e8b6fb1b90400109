"""The embedder interface: one prefetched CHW patch in, one embedding out.

An embedder knows its input contract (``describe()``) and how to turn pixels into
vectors; it knows nothing about where pixels come from. The engine fetches the
bands the embedder declares and hands them over as ``input_chw``.
"""

from __future__ import annotations

import copy
import os
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Optional, Sequence

import numpy as np

from ..errors import ModelError
from ..specs import OutputSpec, SensorSpec, TemporalSpec

#: The window an on-the-fly model composites when ``temporal=None`` on a backend that
#: serves a whole public archive (Earth Engine, the STAC APIs): one calendar year, fixed
#: so that a request means the same thing in every run. The local provider and custom
#: providers get ``temporal=None`` as it is: their imagery is what the user put there
#: (the local one reads every scene of its catalog).
DEFAULT_WINDOW = TemporalSpec.range("2023-01-01", "2024-01-01")
#: backends that serve whole archives, where ``temporal=None`` means the default window
ARCHIVE_BACKENDS = ("gee", "stac", "earth-search", "planetary-computer")


@dataclass
class EmbedResult:
    """What an embedder returns for one patch: ``data`` float32 and model-side ``meta``."""

    data: np.ndarray
    meta: Dict[str, Any] = field(default_factory=dict)


def _gpu_may_exist() -> bool:
    """A cheap look for GPU device nodes, so ``auto`` need not import torch (~1 s) to say cpu.

    Only Linux is judged here (NVIDIA, ROCm and WSL nodes); elsewhere torch decides.
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return False
    if not sys.platform.startswith("linux"):
        return True
    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg"))


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when a GPU is visible (and torch installed), else ``cpu``."""
    if device not in ("auto", "cpu", "cuda", "mps") and not str(device).startswith("cuda:"):
        raise ModelError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")
    if device != "auto":
        if str(device).startswith("cuda"):
            try:
                import torch
            except ImportError:
                raise ModelError(f"device={device!r} needs torch with CUDA; torch is not installed") from None
            if not torch.cuda.is_available():
                raise ModelError(f"device={device!r} was asked for but torch sees no CUDA GPU")
        return device
    if "torch" not in sys.modules and not _gpu_may_exist():
        return "cpu"
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


class Embedder(ABC):
    """Base class of every model family.

    Subclasses set ``name``, implement :meth:`describe` (static, cheap, no weights)
    and :meth:`embed`; they override :meth:`embed_batch` when they can do better
    than a loop (``has_batch = True``).
    """

    name: ClassVar[str] = ""
    has_batch: ClassVar[bool] = False
    #: embed/embed_batch take ``context=``/``contexts=`` (where and when, see
    #: :func:`rs_embed.inference.patch_context`)
    accepts_context: ClassVar[bool] = False
    _describe_cache: ClassVar[Optional[dict]] = None

    def __init__(self, *, device: str = "auto", **model_config: Any):
        self.device = resolve_device(device)
        self.config = self.validate_config(model_config)

    # -- static capabilities -------------------------------------------------
    @classmethod
    @abstractmethod
    def _describe(cls) -> dict:
        """Build the capability dict (see ``reference/api_specs.md``)."""

    @classmethod
    def describe(cls) -> dict:
        """A copy of the cached capability dict; never loads weights."""
        if cls.__dict__.get("_describe_cache") is None:
            cls._describe_cache = cls.with_default_windows(cls._describe())
        return copy.deepcopy(cls._describe_cache)

    @classmethod
    def default_window(cls, backend: str) -> Optional[TemporalSpec]:
        """The window read when ``temporal=None`` on ``backend`` (None: no time filter)."""
        return DEFAULT_WINDOW if backend in ARCHIVE_BACKENDS else None

    @classmethod
    def with_default_windows(cls, d: dict) -> dict:
        """``describe()["defaults"]["temporal"]``: the ``temporal=None`` window per backend."""
        defaults = d.setdefault("defaults", {})
        gee = cls.default_window("gee")
        defaults.setdefault("temporal", {
            "local": None if cls.default_window("local") is None else cls.default_window("local").to_dict(),
            "gee": None if gee is None else gee.to_dict(),
            "stac": None if cls.default_window("stac") is None else cls.default_window("stac").to_dict(),
            "note": ("used with a warning when temporal=None; local catalogs and custom providers "
                     "are not filtered by time")})
        return d

    @classmethod
    def validate_config(cls, model_config: Dict[str, Any]) -> Dict[str, Any]:
        """Check ``**model_kwargs`` against ``describe()["model_config"]``; fill defaults."""
        schema = cls.describe().get("model_config", {})
        unknown = sorted(set(model_config) - set(schema))
        if unknown:
            raise ModelError(
                f"model {cls.name!r} got unknown option(s) {unknown}; it accepts {sorted(schema) or 'none'}")
        return {key: cls._check_option(key, spec, model_config.get(key, spec.get("default")))
                for key, spec in schema.items()}

    @classmethod
    def _check_option(cls, key: str, spec: dict, value: Any) -> Any:
        """One option against its schema entry: ``choices``, ``type`` (int/float), bounds.

        Bounds: ``min``/``max`` inclusive, ``gt`` exclusive. A ``None`` default means the
        option is optional, so ``None`` passes.
        """
        where = f"model {cls.name!r} option {key}"
        choices = spec.get("choices")
        if choices is not None and value not in choices:
            raise ModelError(f"{where}={value!r} is not one of {choices}")
        typ = spec.get("type")
        if typ not in ("int", "float") or (value is None and spec.get("default") is None):
            return value
        numeric = (np.integer,) if typ == "int" else (int, float, np.integer, np.floating)
        if isinstance(value, bool) or not isinstance(value, (int,) + numeric) \
                or (typ == "float" and not np.isfinite(value)):
            kind = "an integer" if typ == "int" else "a finite number"
            raise ModelError(f"{where} must be {kind}, got {value!r}")
        if "min" in spec and value < spec["min"]:
            raise ModelError(f"{where} must be >= {spec['min']}, got {value!r}")
        if "max" in spec and value > spec["max"]:
            raise ModelError(f"{where} must be <= {spec['max']}, got {value!r}")
        if "gt" in spec and not value > spec["gt"]:
            raise ModelError(f"{where} must be > {spec['gt']}, got {value!r}")
        return int(value) if typ == "int" else float(value)

    def capabilities(self) -> dict:
        """``describe()`` computed once per instance, for read-only use on hot paths.

        ``describe()`` hands out deep copies (callers may edit them); the engine reads
        a few fields per point and must not pay a copy each time.
        """
        caps = self.__dict__.get("_capabilities")
        if caps is None:
            caps = self.__dict__["_capabilities"] = self.describe()
        return caps

    def default_sensor(self) -> Optional[SensorSpec]:
        """The sensor this model reads when the caller gives none."""
        inputs = self.capabilities().get("inputs") or {}
        defaults = self.capabilities().get("defaults") or {}
        if not inputs.get("collection"):
            return None
        return SensorSpec(
            collection=inputs["collection"], bands=tuple(inputs["bands"]),
            scale_m=defaults.get("scale_m", 10), cloudy_pct=defaults.get("cloudy_pct", 30),
            composite=defaults.get("composite", "median"), fill_value=defaults.get("fill_value", 0.0))

    def resolve_temporal(self, temporal):
        """The window this model will actually read for ``temporal``.

        Most models read what they are given; products with fixed periods (annual
        embeddings) override this to snap, warn or refuse, before anything is fetched.
        """
        return temporal

    @property
    def image_size(self) -> Optional[int]:
        """Fixed square input size in pixels, or None when any size is accepted."""
        return (self.capabilities().get("defaults") or {}).get("image_size")

    # -- inference -------------------------------------------------------------
    @abstractmethod
    def embed(self, input_chw: np.ndarray, *, sensor: SensorSpec, output: OutputSpec) -> EmbedResult:
        """Embed one float32 ``(C, H, W)`` patch whose bands follow ``sensor.bands``."""

    def embed_batch(self, inputs: Sequence[np.ndarray], *, sensor: SensorSpec,
                    output: OutputSpec) -> List[EmbedResult]:
        """Embed several patches; the default is a loop, subclasses batch for speed."""
        return [self.embed(x, sensor=sensor, output=output) for x in inputs]

    def check_input(self, input_chw: np.ndarray, sensor: SensorSpec) -> np.ndarray:
        """Common shape/dtype checks; returns float32 CHW."""
        arr = np.asarray(input_chw)
        if arr.ndim != 3:
            raise ModelError(f"model {self.name!r} expects input_chw of shape (C, H, W), got {arr.shape}")
        if arr.shape[0] != len(sensor.bands):
            raise ModelError(
                f"model {self.name!r} got {arr.shape[0]} channels but the sensor lists "
                f"{len(sensor.bands)} bands {list(sensor.bands)}")
        return arr.astype(np.float32, copy=False)


__all__ = ["Embedder", "EmbedResult", "resolve_device"]
