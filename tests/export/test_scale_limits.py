"""Resource limits of the combined layout: open files at assembly and resume, temporary
files on a file system shared by several hosts."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

HERE = os.path.dirname(__file__)

_JOB = textwrap.dedent("""
    import resource, sys
    sys.path.insert(0, {here!r})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, hard))
    import fakes
    from rs_embed import export_batch, load_export
    from rs_embed.errors import ProviderError
    pts = fakes.points({n}, buffer_m=10.0)
    kw = dict(spatials=pts, temporal=fakes.T, models=["fake_stats", "fake_red"], show_progress=False,
              out={out!r}, layout="combined", format={fmt!r}, chunk_size=1, save_inputs=True)
    try:  # the first run fails one point: its shards stay for the resume
        export_batch(backend=fakes.FakeProvider(permanent=[pts[-1].lon]), **kw)
    except ProviderError:
        pass
    m = export_batch(backend=fakes.FakeProvider(), resume=True, **kw)
    r = load_export(m.get("npz_path") or m.get("nc_path"), inputs=True)
    assert m["status"] == "ok" and r.status == "ok", (m["status"], r.status)
    assert r.embedding("fake_stats").shape[0] == {n}
    print("OK", m["summary"]["resumed_points"])
""")


@pytest.mark.parametrize("fmt", ["npz", "netcdf"])
def test_assembly_and_resume_hold_no_file_per_shard(tmp_path, fmt):
    """More shards than the open-file limit allows (one point per shard): the old reader
    kept every shard open and died with 'Too many open files' at assembly."""
    limit, n = 256, 300
    code = _JOB.format(here=HERE, limit=limit, n=n, out=str(tmp_path / "run"), fmt=fmt)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[:2] == ["OK", str(n - 1)]  # the resume kept all but the failed point
    assert not (tmp_path / "run.parts").exists()
