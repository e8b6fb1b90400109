"""Offline-first checkpoint resolution, checksums, safe loading and the model cache."""

from __future__ import annotations

import argparse
import hashlib
import threading
import time

import pytest

from rs_embed.errors import ModelError
from rs_embed.models import weights as W

torch = pytest.importorskip("torch", reason="checkpoint loading needs torch")


def _record(**kw):
    base = dict(model="unit", variant="v1", filename="unit-v1.pth", source="https://example.org/unit-v1.pth",
                arch={}, bands=("B2",), image_size=8, licence="MIT", paper="none", approx_size_mb=12)
    base.update(kw)
    return W.Checkpoint(**base)


def _hf_cache_file(root, repo, filename, payload: bytes):
    """Lay out a file the way huggingface_hub caches it: blob named by sha256, snapshot link."""
    sha = hashlib.sha256(payload).hexdigest()
    base = root / ("models--" + repo.replace("/", "--"))
    (base / "blobs").mkdir(parents=True)
    (base / "blobs" / sha).write_bytes(payload)
    snap = base / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (snap / filename).symlink_to(base / "blobs" / sha)
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text("0" * 40)
    return snap / filename, sha


def test_missing_checkpoint_names_file_size_source_and_places(weights_dir):
    ck = _record()
    with pytest.raises(ModelError) as err:
        W.resolve_checkpoint(ck)
    msg = str(err.value)
    assert "unit-v1.pth" in msg and "about 12 MB" in msg and "https://example.org/unit-v1.pth" in msg
    assert str(weights_dir / "unit-v1.pth") in msg            # RS_EMBED_WEIGHTS_DIR
    assert "checkpoints/unit-v1.pth" in msg                    # torch hub cache
    assert "weights=" in msg and "Downloads are disabled" in msg


def test_resolution_order_explicit_then_env_dir_then_caches(weights_dir, tmp_path, monkeypatch):
    ck = _record(hf_repo="org/unit", hf_filename="unit-v1.pth")
    hf_file, _ = _hf_cache_file(tmp_path / "hf", "org/unit", "unit-v1.pth", b"hf")
    assert W.find_checkpoint(ck) == hf_file                     # only the HF cache has it
    hub = W.torch_hub_dir() / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "unit-v1.pth").write_bytes(b"hub")
    assert W.find_checkpoint(ck) == hf_file                     # HF cache before torch hub
    (weights_dir / "unit").mkdir()
    (weights_dir / "unit" / "unit-v1.pth").write_bytes(b"per-model folder")
    assert W.find_checkpoint(ck) == weights_dir / "unit" / "unit-v1.pth"
    (weights_dir / "unit-v1.pth").write_bytes(b"env")
    assert W.find_checkpoint(ck) == weights_dir / "unit-v1.pth"
    own = tmp_path / "mine.pth"
    own.write_bytes(b"explicit")
    assert W.find_checkpoint(ck, str(own)) == own
    assert W.find_checkpoint(ck, str(weights_dir)) == weights_dir / "unit-v1.pth"  # a folder works
    with pytest.raises(ModelError, match="no file there"):
        W.find_checkpoint(ck, str(tmp_path / "nope.pth"))


def test_torch_hub_cache_is_found(weights_dir, monkeypatch):
    monkeypatch.delenv("RS_EMBED_WEIGHTS_DIR")
    ck = _record()
    hub = W.torch_hub_dir() / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "unit-v1.pth").write_bytes(b"x")
    assert W.resolve_checkpoint(ck) == hub / "unit-v1.pth"


def test_checksum_prefix_and_hf_blob_digest(weights_dir, tmp_path):
    payload = b"some weights"
    digest = hashlib.sha256(payload).hexdigest()
    f = weights_dir / "unit-v1.pth"
    f.write_bytes(payload)
    ok = W.verify_checkpoint(_record(sha256_prefix=digest[:8]), f)
    assert ok["checksum_verified"] and ok["checksum"] == digest
    with pytest.raises(ModelError, match="fails its checksum"):
        W.verify_checkpoint(_record(filename="unit-v2.pth", sha256="0" * 64), f)
    assert W.verify_checkpoint(_record(), f)["checksum_verified"] is False  # nothing published
    hf_file, sha = _hf_cache_file(tmp_path / "hf2", "org/unit", "unit-v1.pth", b"hub blob")
    res = W.verify_checkpoint(_record(), hf_file)
    assert res["checksum_verified"] and res["checksum"] == sha
    (tmp_path / "hf2" / "models--org--unit" / "blobs" / sha).write_bytes(b"tampered")
    with pytest.raises(ModelError, match="fails its checksum"):
        W.verify_checkpoint(_record(), hf_file)


def test_load_state_dict_unwraps_and_refuses_code(weights_dir):
    f = weights_dir / "unit-v1.pth"
    torch.save({"model": {"w": torch.ones(2)}, "epoch": 3, "args": argparse.Namespace(lr=1e-3)}, f)
    sd = W.load_state_dict(f, _record(state_dict_key="model"))
    assert list(sd) == ["w"]
    with pytest.raises(ModelError, match="no 'state_dict' entry"):
        W.load_state_dict(f, _record(state_dict_key="state_dict"))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"w": Evil()}, f)
    with pytest.raises(ModelError, match="cannot read checkpoint"):
        W.load_state_dict(f, _record())


def test_check_keys_refuses_a_checkpoint_of_another_network(weights_dir):
    ck = _record()
    W.check_keys(ck, "f", ["head.weight"], ["decoder.x"], allow_missing=(r"head\..*",),
                 allow_unexpected=(r"decoder\..*",))
    with pytest.raises(ModelError, match="does not fit"):
        W.check_keys(ck, "f", ["blocks.0.attn.qkv.weight"], [])


def test_model_cache_builds_once_under_threads():
    calls = []

    def factory():
        calls.append(1)
        time.sleep(0.05)
        return object()

    got = []
    threads = [threading.Thread(target=lambda: got.append(W.cached_model(("unit", "v", "cpu", "f"), factory)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len({id(g) for g in got}) == 1
    W.clear_model_cache()


def test_register_checkpoint_adds_a_variant():
    from rs_embed.models import ssl4eo
    ck = W.Checkpoint(model="ssl4eo", variant="my_finetune", filename="mine.pth", source="lab",
                      arch={"builder": "resnet18", "kwargs": {}}, bands=ssl4eo.SSL4EO_BANDS,
                      image_size=224, licence="private", paper="-")
    W.register_checkpoint(ck)
    try:
        from rs_embed.models import describe_model
        d = describe_model("ssl4eo")
        assert "my_finetune" in d["model_config"]["variant"]["choices"]
    finally:
        ssl4eo.CATALOG.remove("my_finetune")
    with pytest.raises(ModelError, match="no variant"):
        ssl4eo.CATALOG.get("my_finetune")
