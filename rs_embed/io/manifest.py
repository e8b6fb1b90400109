"""Manifest helpers: JSON-safe values, timestamps, statuses and request fingerprints.

The request fingerprint is the SHA-1 of the canonical JSON (sorted keys, no spaces,
ASCII) of what decides the content of an artifact: the models (name, backend, sensor,
model_config), temporal, output, format, save_inputs, save_embeddings, input_prep and
the spatial(s). Only plain values go in, never ``repr`` of objects, so the same
request gives the same fingerprint in any process, on any machine and Python version.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any, Iterable, Mapping, Optional

import numpy as np

#: manifest layout version of our additions (the public fields never change)
MANIFEST_VERSION = 1


def utc_now() -> str:
    """``2024-05-01T12:00:00Z`` (seconds, UTC)."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def json_safe(obj: Any) -> Any:
    """Plain JSON values: numpy scalars/arrays unwrapped, NaN/inf -> None, tuples -> lists.

    Containers that are already JSON-safe are returned as they are (not copied), so
    sub-dicts shared between many manifests stay shared in memory.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return obj if type(obj) is int else int(obj)
    if isinstance(obj, float):
        if not math.isfinite(obj):
            return None
        return obj if type(obj) is float else float(obj)
    if isinstance(obj, dict) or isinstance(obj, Mapping):
        changed = not isinstance(obj, dict)
        out = {}
        for k, v in obj.items():
            sv = json_safe(v)
            if sv is not v or not isinstance(k, str):
                changed = True
            out[str(k)] = sv
        return out if changed else obj
    if isinstance(obj, list):
        out_l = [json_safe(v) for v in obj]
        return obj if all(a is b for a, b in zip(out_l, obj)) else out_l
    if isinstance(obj, (tuple, set, frozenset)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if hasattr(obj, "to_dict"):
        return json_safe(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return json_safe(dataclasses.asdict(obj))
    return str(obj)


def canonical_json(obj: Any) -> str:
    return json.dumps(json_safe(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def request_fingerprint(request: Mapping[str, Any]) -> str:
    """SHA-1 hex digest of the canonical JSON of ``request``."""
    return hashlib.sha1(canonical_json(request).encode("ascii")).hexdigest()


def _split_at(common: Mapping[str, Any], key: str) -> "tuple[str, str]":
    """The canonical JSON of ``{**common, key: ...}`` before and after the value of ``key``
    (with ``"key":`` at the end of the first part), so that many requests differing only
    there are serialised without repeating the common part."""
    mark = "\u2063" + key + "\u2063"
    text = canonical_json({**common, key: mark})
    token = json.dumps(key) + ":" + json.dumps(mark, ensure_ascii=True)
    prefix, suffix = text.split(token)
    return prefix + json.dumps(key) + ":", suffix


class PointFingerprints:
    """Fingerprints of many one-point requests that differ only in ``spatial``.

    Equal to ``request_fingerprint({**common, "spatial": s})`` but serialises the
    common part once, so 100k points cost milliseconds.
    """

    def __init__(self, common: Mapping[str, Any]):
        self._prefix, self._suffix = _split_at(common, "spatial")

    def __call__(self, spatial: Mapping[str, Any]) -> str:
        text = self._prefix + canonical_json(spatial) + self._suffix
        return hashlib.sha1(text.encode("ascii")).hexdigest()

    def many(self, spatials: Sequence[Mapping[str, Any]]) -> "DigestArray":
        out = DigestArray(len(spatials))
        for i, d in enumerate(spatials):
            out[i] = self(d)
        return out


class DigestArray(Sequence):
    """SHA-1 hex digests of many points in one numpy array: 40 bytes each, where a list
    of strings costs about 100."""

    def __init__(self, n: int):
        self._a = np.zeros(n, dtype="S40")

    def __len__(self) -> int:
        return len(self._a)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [v.decode("ascii") for v in self._a[i]]
        return self._a[i].decode("ascii")

    def __setitem__(self, i: int, digest: str) -> None:
        self._a[i] = digest.encode("ascii")


def spatials_fingerprint(common: Mapping[str, Any], spatials: Iterable[Mapping[str, Any]]) -> str:
    """``request_fingerprint({**common, "spatials": list(spatials)})``, hashed as the
    spatials stream by: a million points never become one JSON string in memory."""
    prefix, suffix = _split_at(common, "spatials")
    h = hashlib.sha1((prefix + "[").encode("ascii"))
    block: list = []
    first = True
    for d in spatials:
        block.append(canonical_json(d))
        if len(block) >= 4096:
            h.update(((("" if first else ",") + ",".join(block))).encode("ascii"))
            first, block = False, []
    if block:
        h.update(((("" if first else ",") + ",".join(block))).encode("ascii"))
    h.update(("]" + suffix).encode("ascii"))
    return h.hexdigest()


def sha1_array(arr: np.ndarray) -> str:
    return hashlib.sha1(memoryview(np.ascontiguousarray(arr)).cast("B")).hexdigest()


def array_record(key: str, arr: np.ndarray, *, sha1: bool = True) -> dict:
    """The ``{npz_key, dtype, shape, sha1}`` record of one stored array."""
    rec = {"npz_key": key, "dtype": str(arr.dtype), "shape": [int(s) for s in arr.shape]}
    if sha1:
        rec["sha1"] = sha1_array(arr)
    return rec


def aggregate_status(statuses: Iterable[str]) -> str:
    """``ok`` if all ok, ``failed`` if none ok (or empty input of failures), else ``partial``."""
    seen = set(statuses)
    if not seen or seen == {"ok"}:
        return "ok"
    if "ok" not in seen and "partial" not in seen:
        return "failed"
    return "partial"


def error_message(exc: BaseException) -> str:
    """A readable one-line message for ``exc``, never empty (``TimeoutError()`` has none)."""
    text = " ".join(str(exc).split())
    if text and text not in ("None", "''"):
        return text
    doc = (type(exc).__doc__ or "").strip().splitlines()
    return doc[0].strip() if doc and doc[0].strip() else type(exc).__name__


def error_record(exc: BaseException, *, stage: str, attempts: Optional[int] = None) -> dict:
    """The readable record of a failure in a manifest: type, message, stage (and attempts)."""
    rec = {"type": type(exc).__name__, "message": error_message(exc), "stage": stage}
    if attempts is not None:
        rec["attempts"] = attempts
    return rec


def slim_meta(meta: dict, common: Mapping[str, Any]) -> dict:
    """``meta`` without the fields equal to the run's ``common`` ones (kept once, in the run
    manifest); a field whose value differs at this point stays."""
    return {k: v for k, v in meta.items() if not (k in common and (v is common[k] or v == common[k]))}


def expand_point_manifest(man: dict, static: Mapping[str, Mapping[str, Any]],
                          top: Optional[Mapping[str, Any]] = None) -> dict:
    """A point manifest with the static parts its run manifest holds put back.

    ``static`` maps a model name to ``{describe, meta_common, model_config}``; ``top``
    holds run-level fields to add when missing (``input_prep``). Manifests that are
    whole already (older versions, the public rs-embed) come back unchanged. The static
    objects are shared, not copied.
    """
    if not isinstance(man, dict) or "run_manifest" not in man or not isinstance(man.get("models"), list):
        return man
    out = dict(man)
    entries = []
    for e in man["models"]:
        st = static.get(e.get("model")) if isinstance(e, dict) else None
        if st is None:
            entries.append(e)
            continue
        e = dict(e)
        d = e.get("describe")
        if isinstance(d, dict) and "$ref" in d and st.get("describe") is not None:
            e["describe"] = st["describe"]
        common = st.get("meta_common")
        if isinstance(e.get("meta"), dict) and isinstance(common, Mapping):
            e["meta"] = {**common, **e["meta"]}
        if "model_config" in st:
            e.setdefault("model_config", st["model_config"])
        entries.append(e)
    out["models"] = entries
    for k, v in (top or {}).items():
        out.setdefault(k, v)
    return out


__all__ = ["slim_meta", "expand_point_manifest", "MANIFEST_VERSION", "utc_now", "json_safe", "canonical_json", "request_fingerprint",
           "PointFingerprints", "DigestArray", "spatials_fingerprint", "sha1_array", "array_record", "aggregate_status", "error_record",
           "error_message"]
