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


# ------------------------------------------------------- temporaries on shared disks

_WRITER = textwrap.dedent("""
    import sys, time
    from rs_embed.io import atomic

    def write(fh):
        fh.write(b"half")
        fh.flush()
        print("writing", flush=True)
        sys.stdin.readline()  # until the test lets go
    atomic.atomic_write({path!r}, write)
""")


def _dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)


def _age(path, seconds: float) -> None:
    t = os.stat(path).st_mtime - seconds
    os.utime(path, (t, t))


def test_temporaries_carry_this_hosts_name_and_pid(tmp_path):
    from rs_embed.io import atomic

    seen = []
    atomic.atomic_write(str(tmp_path / "a.npz"), lambda fh: seen.extend(os.listdir(tmp_path)))
    assert len(seen) == 1 and seen[0].startswith(f".a.npz.rs_embed-{atomic.host_tag()}-{os.getpid()}-")
    assert atomic.host_tag("node-7.cluster") == "node_7.cluster"


def test_clean_up_never_touches_a_live_export_of_another_host(tmp_path):
    """Another host's pids mean nothing here: its temporaries go only when old and unlocked."""
    from rs_embed.io import atomic

    dead = _dead_pid()
    other = "otherhost.example"
    assert other != atomic.host_tag()
    fresh = tmp_path / f".p1.npz.rs_embed-{other}-{dead}-aaaa.tmp"  # being written there right now
    old = tmp_path / f".p2.npz.rs_embed-{other}-{dead}-bbbb.tmp"  # abandoned long ago
    legacy = tmp_path / f".p3.npz.rs_embed-{dead}-cccc.tmp"  # no host (older versions): same rule
    mine_dead = tmp_path / f".p4.npz.rs_embed-{atomic.host_tag()}-{dead}-dddd.tmp"
    folder = tmp_path / f".run.nc.rs_embed-{other}-{dead}-eeee.tmpdir"
    folder.mkdir()
    (folder / "run.nc").write_bytes(b"x")
    for f in (fresh, old, legacy, mine_dead):
        f.write_bytes(b"x")
    for f in (old, legacy, folder / "run.nc", folder):
        _age(f, atomic.STALE_AGE_S + 60)
    assert atomic.remove_stale_temps(str(tmp_path)) == 4
    assert sorted(os.listdir(tmp_path)) == [fresh.name]
    # a folder whose file is still being written (recent mtime inside) stays
    folder.mkdir()
    (folder / "run.nc").write_bytes(b"x")
    _age(folder, atomic.STALE_AGE_S + 60)
    assert atomic.remove_stale_temps(str(tmp_path)) == 0 and folder.exists()


def test_a_locked_temporary_of_another_host_is_kept_however_old(tmp_path):
    """A writer elsewhere holds its temporary's lock: seen from here (a renamed host tag)
    the file is old and its pid unknown, and it is still left alone."""
    from rs_embed.io import atomic

    proc = subprocess.Popen([sys.executable, "-c", _WRITER.format(path=str(tmp_path / "big.npz"))],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        (tmp,) = [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
        foreign = tmp.replace(f"rs_embed-{atomic.host_tag()}-", "rs_embed-otherhost-")
        os.rename(tmp_path / tmp, tmp_path / foreign)  # as another host would see it
        _age(tmp_path / foreign, atomic.STALE_AGE_S + 60)
        assert atomic.remove_stale_temps(str(tmp_path)) == 0
        assert (tmp_path / foreign).exists()
    finally:
        proc.communicate("go\n", timeout=30)
    assert proc.returncode != 0 or not (tmp_path / "big.npz").exists()  # its rename found no file
