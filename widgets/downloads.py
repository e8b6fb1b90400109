"""Download links for an export that work wherever the page is (JupyterLab, Voila).

Voila serves files only under its root and, by default, only pictures; a link to
``exports/run.zip`` would be refused. So the files travel inside the page: a zip of
the export (and, for small exports, each file) becomes a ``data:`` URL behind an
``<a download>`` link. The browser saves it without asking any server. Exports larger
than :data:`MAX_INLINE_MB` are not sent through the page; the panel says where they are.
"""

from __future__ import annotations

import base64
import io
import os
import zipfile
from html import escape
from pathlib import Path
from typing import List, Optional, Tuple

#: the largest export (MB of files) sent through the page as a download link
MAX_INLINE_MB = 64.0
#: per-file links are listed for exports of at most this many files
MAX_FILE_LINKS = 12

_MIME = {".zip": "application/zip", ".json": "application/json", ".npz": "application/octet-stream",
         ".nc": "application/x-netcdf", ".csv": "text/csv", ".geojson": "application/geo+json"}


def export_files(location) -> Tuple[Path, List[Path]]:
    """(root folder, files) of the export at ``location`` (a per-item folder, or a
    combined file with its manifest); temporary and hidden files are left out."""
    loc = Path(location)
    if loc.is_dir():
        files = sorted(p for p in loc.rglob("*") if p.is_file() and not p.name.startswith(".")
                       and not p.name.endswith(".tmp"))
        return loc, files
    stem = loc.with_suffix("") if loc.suffix in (".npz", ".nc", ".json") else loc
    files = [p for p in (stem.with_suffix(".npz"), stem.with_suffix(".nc"), stem.with_suffix(".json"))
             if p.is_file()]
    if not files:
        raise FileNotFoundError(f"no export at {str(location)!r}")
    return loc.parent, files


def zip_export(location) -> Tuple[str, bytes]:
    """(file name, bytes) of a zip holding the export; arrays stored (already compressed),
    manifests deflated. Paths inside are relative to the export's folder."""
    root, files = export_files(location)
    loc = Path(location)
    name = (loc.name if loc.is_dir() else loc.with_suffix("").name) + ".zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in files:
            arc = f.relative_to(root.parent if loc.is_dir() else root)
            method = zipfile.ZIP_STORED if f.suffix in (".npz", ".nc") else zipfile.ZIP_DEFLATED
            zf.write(f, str(arc), compress_type=method)
    return name, buf.getvalue()


def data_url(data: bytes, filename: str) -> str:
    mime = _MIME.get(os.path.splitext(filename)[1].lower(), "application/octet-stream")
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def link_html(data: bytes, filename: str, label: Optional[str] = None, css: str = "rs-download") -> str:
    """An ``<a download>`` link carrying ``data``."""
    size = _size_text(len(data))
    return (f"<a class='{css}' download='{escape(filename)}' href='{data_url(data, filename)}'>"
            f"⬇ {escape(label or filename)}</a> <span style='color:#666'>({size})</span>")


def _size_text(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n:.1f} GB"


def downloads_html(location, max_inline_mb: float = MAX_INLINE_MB) -> str:
    """Download links for the export at ``location``: the whole export as a zip, and
    each file when there are few; too large an export gets its path instead."""
    root, files = export_files(location)
    total = sum(f.stat().st_size for f in files)
    if total > max_inline_mb * 1024 * 1024:
        return (f"<div class='rs-downloads'>download: the export is {_size_text(total)}, more than "
                f"{max_inline_mb:g} MB can travel through the page; its files are in "
                f"<code>{escape(str(Path(location).resolve()))}</code></div>")
    name, data = zip_export(location)
    parts = [link_html(data, name, f"{name} (the whole export, {len(files)} files)", "rs-download rs-download-zip")]
    if len(files) <= MAX_FILE_LINKS:
        parts += [link_html(f.read_bytes(), f.name, css="rs-download rs-download-file") for f in files]
    return "<div class='rs-downloads'>download: " + " · ".join(parts) + "</div>"


__all__ = ["export_files", "zip_export", "downloads_html", "link_html", "MAX_INLINE_MB"]
