"""Where the files of each point of a per-item export live (the one place that knows).

Small exports keep the public rs-embed layout: ``<out_dir>/<name>.npz|.nc`` beside
``<name>.json``. An export of more than :data:`SHARD_THRESHOLD` points puts point ``i``
in the sub-folder ``<out_dir>/<i // SHARD_SIZE:04d>/`` so no folder holds more than
``2 * SHARD_SIZE`` point files (file systems and ``ls`` slow down on huge folders). The
run manifest records the layout (``file_layout``); a folder without that record is flat.
The writer, resume, the run index and the reader all ask :class:`PerItemLayout`.
"""

from __future__ import annotations

import os
from typing import Any, List, Optional, Sequence

#: exports of more points than this are sharded into sub-folders
SHARD_THRESHOLD = 10_000
#: points per sub-folder of a sharded export
SHARD_SIZE = 4096


class PerItemLayout:
    """Paths of point ``i``'s array file and manifest, relative to the export folder or absolute."""

    def __init__(self, directory: str, names: Sequence[str], ext: str, shard_size: Optional[int] = None):
        self.dir = directory
        self.names = names
        self.ext = ext
        self.shard_size = shard_size

    @classmethod
    def for_export(cls, directory: str, names: Sequence[str], ext: str) -> "PerItemLayout":
        """The layout a new export of ``len(names)`` points gets."""
        return cls(directory, names, ext, SHARD_SIZE if len(names) > SHARD_THRESHOLD else None)

    @classmethod
    def from_record(cls, directory: str, names: Sequence[str], ext: str, record: Any) -> "PerItemLayout":
        """The layout a run manifest's ``file_layout`` describes (flat when absent or unknown)."""
        size = record.get("shard_size") if isinstance(record, dict) and record.get("kind") == "sharded" else None
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            size = None
        return cls(directory, names, ext, size)

    @property
    def sharded(self) -> bool:
        return self.shard_size is not None

    def to_record(self) -> dict:
        if self.shard_size is None:
            return {"kind": "flat"}
        return {"kind": "sharded", "shard_size": self.shard_size, "folder": "{index // shard_size:04d}"}

    def folder(self, i: int) -> str:
        """Sub-folder of point ``i`` ('' when flat)."""
        return "" if self.shard_size is None else f"{i // self.shard_size:04d}"

    def folders(self) -> List[str]:
        if self.shard_size is None:
            return []
        return [f"{k:04d}" for k in range((len(self.names) + self.shard_size - 1) // self.shard_size)]

    def rel_stem(self, i: int) -> str:
        sub = self.folder(i)
        return f"{sub}/{self.names[i]}" if sub else self.names[i]

    def rel_file(self, i: int) -> str:
        """The array file of point ``i`` relative to the export folder (``/``-separated)."""
        return self.rel_stem(i) + self.ext

    def array_path(self, i: int) -> str:
        return os.path.join(self.dir, self.rel_stem(i) + self.ext)

    def manifest_path(self, i: int) -> str:
        return os.path.join(self.dir, self.rel_stem(i) + ".json")

    def run_manifest_ref(self, i: int) -> str:
        """The run manifest's path relative to point ``i``'s manifest."""
        from .keys import RUN_MANIFEST

        return RUN_MANIFEST if self.shard_size is None else f"../{RUN_MANIFEST}"

    def make_folders(self) -> None:
        for sub in self.folders():
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)


__all__ = ["PerItemLayout", "SHARD_THRESHOLD", "SHARD_SIZE"]
