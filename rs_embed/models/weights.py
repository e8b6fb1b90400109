"""Pretrained checkpoints as data, and one offline-first path to find, check and load them.

Every pretrained model family describes its checkpoints with :class:`Checkpoint`
records (where the file comes from, how big it is, its checksum where the source
publishes one, the bands it reads in order, its normalisation constants and their
citation, licence, paper). Nothing here knows about a particular architecture: the
family module builds the network, this module finds the file and hands back tensors.

Resolution order for a checkpoint file:

1. an explicit ``weights=`` path (a file, or a folder holding the file);
2. the folder named by ``RS_EMBED_WEIGHTS_DIR`` (``<dir>/<file>`` or ``<dir>/<model>/<file>``);
3. the Hugging Face cache and the torch hub cache, local files only;
4. a download, unless downloads are disabled (``HF_HUB_OFFLINE=1`` or
   ``RS_EMBED_OFFLINE=1``), in which case :class:`ModelError` says which file is
   missing, how large it is, where it comes from and where to put it.

Importing this module is cheap: torch and huggingface_hub load only when a file is
actually read or downloaded.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from ..errors import ModelError

WEIGHTS_DIR_ENV = "RS_EMBED_WEIGHTS_DIR"
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Checkpoint:
    """One published checkpoint of one model variant, described as data.

    ``arch`` holds the architecture hyper-parameters the family builder needs, so a
    variant (including a tiny one made for tests) is only a new record.
    """

    model: str
    variant: str
    filename: str
    source: str                      # human-readable origin (URL of the file or its page)
    arch: Mapping[str, Any]
    bands: Tuple[str, ...]
    image_size: int
    licence: str
    paper: str
    url: Optional[str] = None        # direct download URL (torch hub style)
    hf_repo: Optional[str] = None    # Hugging Face repo id holding ``hf_filename``
    hf_filename: Optional[str] = None
    hf_revision: Optional[str] = None
    size_bytes: Optional[int] = None  # exact size when the source states it
    approx_size_mb: Optional[float] = None  # from the parameter count when it does not
    sha256: Optional[str] = None      # full digest published by the source
    sha256_prefix: Optional[str] = None  # torch hub convention: leading hex digits in the file name
    state_dict_key: Optional[str] = None  # the checkpoint wraps its weights under this key
    mean: Optional[Tuple[float, ...]] = None
    std: Optional[Tuple[float, ...]] = None
    norm_source: str = ""             # citation for mean/std/scaling
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def size_text(self) -> str:
        if self.size_bytes:
            return _human_size(self.size_bytes)
        if self.approx_size_mb:
            return f"about {self.approx_size_mb:,.0f} MB"
        return "size not published"

    def to_dict(self) -> Dict[str, Any]:
        """Plain description for ``describe()`` and manifests (no architecture internals)."""
        return {
            "variant": self.variant, "file": self.filename, "source": self.source,
            "hf_repo": self.hf_repo, "size": self.size_text, "sha256": self.sha256,
            "sha256_prefix": self.sha256_prefix, "bands": list(self.bands),
            "image_size": self.image_size, "mean": list(self.mean) if self.mean else None,
            "std": list(self.std) if self.std else None, "normalisation_source": self.norm_source,
            "licence": self.licence, "paper": self.paper,
        }


def _human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GB"  # pragma: no cover


class Catalog:
    """The checkpoints of one model family, keyed by variant name; thread-safe."""

    def __init__(self, model: str, default: str):
        self.model = model
        self.default = default
        self._records: Dict[str, Checkpoint] = {}
        self._lock = threading.Lock()

    def add(self, ckpt: Checkpoint) -> Checkpoint:
        if ckpt.model != self.model:
            raise ModelError(f"checkpoint for model {ckpt.model!r} added to the {self.model!r} catalog")
        with self._lock:
            self._records[ckpt.variant] = ckpt
        return ckpt

    def remove(self, variant: str) -> None:
        with self._lock:
            self._records.pop(variant, None)

    def variants(self) -> list:
        with self._lock:
            return list(self._records)

    def get(self, variant: str) -> Checkpoint:
        with self._lock:
            rec = self._records.get(variant)
        if rec is None:
            raise ModelError(
                f"model {self.model!r} has no variant {variant!r}; choose one of {self.variants()}")
        return rec


_catalogs: Dict[str, Catalog] = {}


def catalog(model: str, default: Optional[str] = None) -> Catalog:
    """The catalog of ``model`` (created on first use with ``default`` as default variant)."""
    cat = _catalogs.get(model)
    if cat is None:
        if default is None:
            raise ModelError(f"no checkpoint catalog for model {model!r}")
        cat = _catalogs[model] = Catalog(model, default)
    return cat


def register_checkpoint(ckpt: Checkpoint) -> Checkpoint:
    """Add a checkpoint (e.g. a lab's own fine-tune) as a new ``variant`` of its model."""
    return catalog(ckpt.model).add(ckpt)


# ----------------------------------------------------------------------------- where


def downloads_disabled() -> bool:
    return any(os.environ.get(v, "").strip().lower() in _TRUE
               for v in ("HF_HUB_OFFLINE", "RS_EMBED_OFFLINE"))


def torch_hub_dir() -> Path:
    """torch's hub folder, computed the way torch does without importing it."""
    import sys
    torch_mod = sys.modules.get("torch")
    if torch_mod is not None and hasattr(torch_mod, "hub"):
        return Path(torch_mod.hub.get_dir())
    torch_home = os.environ.get("TORCH_HOME")
    if not torch_home:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        torch_home = os.path.join(xdg, "torch")
    return Path(os.path.expanduser(torch_home)) / "hub"


def _hf_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def _hf_cached(ckpt: Checkpoint) -> Optional[Path]:
    """The file in the Hugging Face cache, if there (never touches the network)."""
    if not ckpt.hf_repo:
        return None
    fname = ckpt.hf_filename or ckpt.filename
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        try_to_load_from_cache = None
    if try_to_load_from_cache is not None:
        for rev in ([ckpt.hf_revision] if ckpt.hf_revision else []) + [None]:
            hit = try_to_load_from_cache(ckpt.hf_repo, fname, cache_dir=str(_hf_cache_dir()), revision=rev)
            if isinstance(hit, str) and os.path.isfile(hit):
                return Path(hit)
        return None
    snaps = _hf_cache_dir() / ("models--" + ckpt.hf_repo.replace("/", "--")) / "snapshots"
    if snaps.is_dir():
        for snap in sorted(snaps.iterdir()):
            cand = snap / fname
            if cand.is_file():
                return cand
    return None


def candidate_paths(ckpt: Checkpoint, explicit: Optional[str] = None) -> list:
    """Every local place the file is looked for, in order (for messages and lookups)."""
    out = []
    if explicit:
        p = Path(os.path.expanduser(str(explicit)))
        if p.is_dir():
            # the file under its catalog path, else (for "<repo>/<file>" names) directly inside
            inside = p / Path(ckpt.filename).name
            out.append(inside if not (p / ckpt.filename).is_file() and inside.is_file() else p / ckpt.filename)
        else:
            out.append(p)
    wdir = os.environ.get(WEIGHTS_DIR_ENV)
    if wdir:
        base = Path(os.path.expanduser(wdir))
        out += [base / ckpt.filename, base / ckpt.model / ckpt.filename]
    out.append(torch_hub_dir() / "checkpoints" / ckpt.filename)
    return out


def find_checkpoint(ckpt: Checkpoint, explicit: Optional[str] = None) -> Optional[Path]:
    """The local checkpoint file, or None; never downloads, never imports torch."""
    if explicit:
        p = candidate_paths(ckpt, explicit)[0]
        if not p.is_file():
            raise ModelError(
                f"weights={explicit!r} for {ckpt.model} variant {ckpt.variant!r}: no file there "
                f"(expected the file itself or a folder holding {ckpt.filename})")
        return p
    paths = candidate_paths(ckpt)
    for p in paths[:-1]:
        if p.is_file():
            return p
    hit = _hf_cached(ckpt)
    if hit is not None:
        return hit
    return paths[-1] if paths[-1].is_file() else None


def _missing_message(ckpt: Checkpoint, why: str) -> str:
    wdir = os.environ.get(WEIGHTS_DIR_ENV)
    where = [f"{Path(wdir).expanduser() / ckpt.filename}" if wdir
             else f"$RS_EMBED_WEIGHTS_DIR/{ckpt.filename} (set RS_EMBED_WEIGHTS_DIR to a folder)",
             str(torch_hub_dir() / "checkpoints" / ckpt.filename)]
    if ckpt.hf_repo:
        where.append(f"the Hugging Face cache (huggingface-cli download {ckpt.hf_repo} "
                     f"{ckpt.hf_filename or ckpt.filename})")
    lines = "\n".join(f"  - {w}" for w in where)
    return (f"checkpoint for model {ckpt.model!r} variant {ckpt.variant!r} not found: "
            f"{ckpt.filename} ({ckpt.size_text}) from {ckpt.source}. {why}\n"
            f"Download it and put it at one of:\n{lines}\n"
            f"or pass weights='/path/to/{ckpt.filename}'.")


def resolve_checkpoint(ckpt: Checkpoint, explicit: Optional[str] = None) -> Path:
    """Find the checkpoint locally, else download it where the network allows."""
    found = find_checkpoint(ckpt, explicit)
    if found is not None:
        return found
    if downloads_disabled():
        raise ModelError(_missing_message(ckpt, "Downloads are disabled (HF_HUB_OFFLINE/RS_EMBED_OFFLINE)."))
    try:
        return _download(ckpt)
    except ModelError:
        raise
    except Exception as exc:  # network, permissions, missing client library
        raise ModelError(_missing_message(ckpt, f"Download failed: {type(exc).__name__}: {exc}.")) from exc


def _download(ckpt: Checkpoint) -> Path:
    if ckpt.url:
        import torch
        dst = torch_hub_dir() / "checkpoints" / ckpt.filename
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(dst.name + ".part")
        torch.hub.download_url_to_file(ckpt.url, str(tmp), hash_prefix=ckpt.sha256_prefix, progress=True)
        os.replace(tmp, dst)
        return dst
    if ckpt.hf_repo:
        try:
            from huggingface_hub import hf_hub_download
        except ImportError:
            raise ModelError(_missing_message(
                ckpt, "Downloading it needs huggingface_hub: pip install 'rs_embed[models]'.")) from None
        return Path(hf_hub_download(ckpt.hf_repo, ckpt.hf_filename or ckpt.filename,
                                    revision=ckpt.hf_revision))
    raise ModelError(_missing_message(ckpt, "It has no download location; fetch it by hand."))


# ------------------------------------------------------------------------- checksums

_verified: Dict[Tuple, str] = {}
_verify_lock = threading.Lock()


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def expected_digest(ckpt: Checkpoint, path: Path) -> Tuple[Optional[str], str]:
    """(expected sha256 or prefix, where that expectation comes from)."""
    if ckpt.sha256:
        return ckpt.sha256.lower(), "published sha256"
    if ckpt.sha256_prefix:
        return ckpt.sha256_prefix.lower(), "sha256 prefix in the published file name"
    real = Path(os.path.realpath(path))
    if re.fullmatch(r"[0-9a-f]{64}", real.name) and real.parent.name == "blobs":
        return real.name, "sha256 the Hugging Face hub published for this file"
    return None, "no checksum published"


def verify_checkpoint(ckpt: Checkpoint, path: Path) -> Dict[str, Any]:
    """Check the file against the published checksum (once per file per process)."""
    expected, origin = expected_digest(ckpt, path)
    if expected is None:
        return {"checksum": "not published", "checksum_verified": False}
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    with _verify_lock:
        digest = _verified.get(key)
    if digest is None:
        digest = sha256_file(Path(path))
        with _verify_lock:
            _verified[key] = digest
    if not digest.startswith(expected):
        raise ModelError(
            f"checkpoint {path} for model {ckpt.model!r} variant {ckpt.variant!r} fails its checksum: "
            f"sha256 {digest} does not match {expected} ({origin}). The file is corrupt or a "
            f"different checkpoint; delete it and fetch {ckpt.filename} again from {ckpt.source}.")
    return {"checksum": digest, "checksum_verified": True, "checksum_source": origin}


# ----------------------------------------------------------------------------- load


def load_state_dict(path: Path, ckpt: Checkpoint) -> Dict[str, Any]:
    """Tensors of a checkpoint file (safe loading: no arbitrary pickled code)."""
    import torch
    p = str(path)
    if p.endswith(".safetensors"):
        from safetensors.torch import load_file
        obj: Any = load_file(p, device="cpu")
    else:
        try:
            # Some training scripts store their argparse options beside the weights.
            with torch.serialization.safe_globals([argparse.Namespace]):
                obj = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ModelError(f"cannot read checkpoint {path} for model {ckpt.model!r}: "
                             f"{type(exc).__name__}: {exc}") from exc
    if ckpt.state_dict_key:
        if not isinstance(obj, dict) or ckpt.state_dict_key not in obj:
            raise ModelError(f"checkpoint {path} has no {ckpt.state_dict_key!r} entry; "
                             f"is it really {ckpt.filename} from {ckpt.source}?")
        obj = obj[ckpt.state_dict_key]
    if not isinstance(obj, dict) or not obj:
        raise ModelError(f"checkpoint {path} does not hold a state dict")
    return obj


def check_keys(ckpt: Checkpoint, path: Path, missing, unexpected, *, allow_missing=(), allow_unexpected=()) -> None:
    """Refuse a checkpoint whose tensors do not fit the network (wrong file or variant)."""
    bad_missing = [k for k in missing if not any(re.fullmatch(a, k) for a in allow_missing)]
    bad_unexpected = [k for k in unexpected if not any(re.fullmatch(a, k) for a in allow_unexpected)]
    if bad_missing or bad_unexpected:
        raise ModelError(
            f"checkpoint {path} does not fit model {ckpt.model!r} variant {ckpt.variant!r}: "
            f"missing {bad_missing[:8]}{'...' if len(bad_missing) > 8 else ''}, "
            f"unexpected {bad_unexpected[:8]}{'...' if len(bad_unexpected) > 8 else ''}")


# ---------------------------------------------------------------------- model cache

_models: Dict[Tuple, Any] = {}
_key_locks: Dict[Tuple, threading.Lock] = {}
_cache_lock = threading.Lock()


def cached_model(key: Tuple, factory: Callable[[], Any]) -> Any:
    """One loaded network per key (model, variant, device, file); built once even under threads."""
    with _cache_lock:
        if key in _models:
            return _models[key]
        lock = _key_locks.setdefault(key, threading.Lock())
    with lock:
        with _cache_lock:
            if key in _models:
                return _models[key]
        value = factory()
        with _cache_lock:
            _models[key] = value
        return value


def clear_model_cache() -> None:
    """Drop every loaded network (frees memory; the next use loads again)."""
    with _cache_lock:
        _models.clear()
        _key_locks.clear()


__all__ = ["Checkpoint", "Catalog", "catalog", "register_checkpoint", "find_checkpoint",
           "resolve_checkpoint", "verify_checkpoint", "load_state_dict", "check_keys",
           "cached_model", "clear_model_cache", "downloads_disabled", "torch_hub_dir",
           "WEIGHTS_DIR_ENV"]
