"""model_status(): readiness of every model without importing deep-learning libraries;
a missing extra fails with the pip command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rs_embed.errors import ModelError
from rs_embed.models import model_status

PRETRAINED = ["dofa", "prithvi", "remoteclip", "satmae", "scalemae", "ssl4eo"]


def test_status_lists_every_model_and_imports_no_framework(tmp_path):
    code = ("import json, sys\nfrom rs_embed.models import model_status\n"
            "s = model_status()\n"
            "from rs_embed.models import list_models\n"
            "print(json.dumps({'status': s, 'names': list_models(), 'loaded': [m for m in ('torch', 'timm', 'open_clip', 'torchgeo')"
            " if m in sys.modules]}))")
    env = {"RS_EMBED_WEIGHTS_DIR": str(tmp_path), "TORCH_HOME": str(tmp_path / "t"),
           "HF_HUB_CACHE": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["loaded"] == []
    by_name = {s["model"]: s for s in res["status"]}
    assert sorted(by_name) == sorted(res["names"])
    for name in PRETRAINED:
        s = by_name[name]
        assert s["ready"] is False                       # no checkpoint in the empty folders
        assert s["default_variant"] in s["variants"]
        assert all(v["weights"] is None and v["file"] for v in s["variants"].values())


def test_status_sees_a_checkpoint_in_the_weights_dir(weights_dir):
    from rs_embed.models import ssl4eo
    ck = ssl4eo.CATALOG.get("resnet50_moco")
    (weights_dir / ck.filename).write_bytes(b"placeholder")
    s = {x["model"]: x for x in model_status()}["ssl4eo"]
    assert s["variants"]["resnet50_moco"]["weights"] == str(weights_dir / ck.filename)
    assert s["ready"] is (not s["missing_packages"])


def test_missing_extra_names_the_pip_command(monkeypatch, weights_dir):
    from rs_embed.models.remoteclip import RemoteCLIPEmbedder
    monkeypatch.setattr(RemoteCLIPEmbedder, "requires", ("numpy", "no_such_package_xyz"))
    with pytest.raises(ModelError, match=r"pip install 'rs_embed\[models\]'"):
        RemoteCLIPEmbedder(device="cpu")
    s = RemoteCLIPEmbedder.status()
    assert s["ready"] is False and s["missing_packages"] == ["no_such_package_xyz"]
    assert s["install"] == "pip install 'rs_embed[models]'"


@pytest.mark.parametrize("name,collection,bands,scale", [
    ("remoteclip", "COPERNICUS/S2_SR_HARMONIZED", ["B4", "B3", "B2"], 10),
    ("prithvi", "COPERNICUS/S2_SR_HARMONIZED", ["B2", "B3", "B4", "B8A", "B11", "B12"], 30),
    ("ssl4eo", "COPERNICUS/S2_HARMONIZED", ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9",
                                            "B10", "B11", "B12"], 10),
    ("dofa", "COPERNICUS/S2_HARMONIZED", ["B4", "B3", "B2", "B5", "B6", "B7", "B8", "B11", "B12"], 10),
    ("scalemae", "COPERNICUS/S2_SR_HARMONIZED", ["B4", "B3", "B2"], 10),
    ("satmae", "COPERNICUS/S2_SR_HARMONIZED", ["B4", "B3", "B2"], 10),
])
def test_describe_states_the_input_contract_without_weights(name, collection, bands, scale):
    from rs_embed.models import describe_model
    d = describe_model(name)
    assert d["inputs"]["collection"] == collection and d["inputs"]["bands"] == bands
    assert d["defaults"]["scale_m"] == scale and d["type"] == "on_the_fly"
    assert {"variant", "weights"} <= set(d["model_config"])
    default = d["variants"][d["defaults"]["variant"]]
    assert default["bands"] == bands and default["file"] and default["source"] and default["licence"]
    assert default["normalisation_source"] and d["paper"] and d["preprocessing"] and d["outputs"]
