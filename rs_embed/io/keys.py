"""Array and file names of an export, shared by the writers and the reader.

The names are those of the public rs-embed (0.2.x-0.3.x) so files we
write load in its reader and files it wrote load in ours.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

FORMATS = ("npz", "netcdf", "parquet", "zarr")
EXTENSIONS = {"npz": ".npz", "netcdf": ".nc", "parquet": ".parquet", "zarr": ".zarr"}
#: formats only the combined layout writes (one table / one store for the whole run)
COMBINED_ONLY = ("parquet", "zarr")
#: the optional extra each of them needs
EXTRAS = {"parquet": "parquet", "zarr": "zarr"}

_NON_KEY = re.compile(r"[^0-9A-Za-z_]+")
_UNDERSCORES = re.compile(r"_+")


def sanitize_key(name: str) -> str:
    """The model part of an array key: ``"RemoteCLIP-ViT/B"`` -> ``"RemoteCLIP_ViT_B"``."""
    key = _UNDERSCORES.sub("_", _NON_KEY.sub("_", str(name))).strip("_")
    return key or "item"


def input_key(model_key: str) -> str:
    """Per-item input patch ``[C, H, W]``."""
    return f"input_chw__{model_key}"


def embedding_key(model_key: str) -> str:
    """Per-item embedding ``[D]`` or ``[D, h, w]``."""
    return f"embedding__{model_key}"


def inputs_key(model_key: str) -> str:
    """Combined stacked inputs ``[N, C, H, W]``."""
    return f"inputs_bchw__{model_key}"


def embeddings_key(model_key: str) -> str:
    """Combined stacked embeddings ``[N, D]`` or ``[N, D, h, w]``."""
    return f"embeddings__{model_key}"


def point_input_key(model_key: str, index: int) -> str:
    """Combined input of one point (partial or ragged exports)."""
    return f"input_chw__{model_key}__{index:05d}"


def point_embedding_key(model_key: str, index: int) -> str:
    """Combined embedding of one point (partial or ragged exports)."""
    return f"embedding__{model_key}__{index:05d}"


def default_item_name(index: int) -> str:
    """File stem of point ``index`` in a per-item export: ``p00000``, ``p00001``, ..."""
    return f"p{index:05d}"


class DefaultNames(Sequence):
    """The default names of ``n`` points, made when asked (a million points need no list)."""

    def __init__(self, n: int):
        self._range = range(n)

    def __len__(self) -> int:
        return len(self._range)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [default_item_name(j) for j in self._range[i]]
        return default_item_name(self._range[i])

    def __eq__(self, other) -> bool:
        if isinstance(other, (str, bytes)) or not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]


#: run-level manifest of a per-item export directory (not a point: it has no array file)
RUN_MANIFEST = "rs_embed_export.json"

#: the lock an export holds on its target (hidden; see :mod:`rs_embed.io.lock`)
LOCK_NAME = ".rs_embed.lock"
#: a combined export's checkpoint folder is ``<out>.parts``; rs_embed marks its own with
#: this file and never deletes a ``.parts`` folder without it
PARTS_SUFFIX = ".parts"
PARTS_MARKER = ".rs_embed-parts"


def per_item_lock(out_dir: str) -> str:
    """Lock file of a per-item export: inside its folder."""
    return os.path.join(out_dir, LOCK_NAME)


def combined_lock(base: str) -> str:
    """Lock file of a combined export ``<base>.npz|.nc|.parquet|.zarr`` (covers ``<base>.json`` and
    ``<base>.parts`` too, which both formats share): ``.<base>.rs_embed.lock`` beside it."""
    folder, name = os.path.split(base)
    return os.path.join(folder, f".{name}{LOCK_NAME}")


def parts_dir(base: str) -> str:
    return base + PARTS_SUFFIX


__all__ = ["FORMATS", "EXTENSIONS", "COMBINED_ONLY", "EXTRAS", "RUN_MANIFEST", "sanitize_key", "input_key", "embedding_key",
           "inputs_key", "embeddings_key", "point_input_key", "point_embedding_key",
           "default_item_name", "DefaultNames", "LOCK_NAME", "PARTS_SUFFIX", "PARTS_MARKER", "per_item_lock",
           "combined_lock", "parts_dir"]
