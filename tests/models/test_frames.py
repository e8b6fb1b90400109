"""Time series: a window binned into frames, one composite each, through the real local
provider; empty bins reported (and warned about), not silently dropped."""

from __future__ import annotations

import numpy as np
import pytest

from rs_embed import SensorSpec, TemporalSpec
from rs_embed.errors import ProviderError, SpecError
from rs_embed.providers.base import fetch_input, frame_windows
from rs_embed.providers.local import LocalProvider

from .scenes import centre_roi, write_scenes


def test_frame_windows_cover_the_window_without_gaps():
    wins = frame_windows(TemporalSpec.year(2022), 12)
    assert len(wins) == 12 and wins[0].start == "2022-01-01" and wins[-1].end == "2023-01-01"
    assert all(a.end == b.start for a, b in zip(wins, wins[1:]))
    assert len(frame_windows(TemporalSpec.range("2022-06-01", "2022-06-04"), 12)) == 3  # one a day


def test_sensor_frames_are_validated_and_kept_out_of_single_composites():
    with pytest.raises(SpecError, match="frames"):
        SensorSpec("X", ("B4",), frames=0)
    assert "frames" not in SensorSpec("X", ("B4",)).to_dict()
    assert SensorSpec("X", ("B4",), frames=3).identity()["frames"] == 3


def test_binned_series_with_an_empty_bin(tmp_path):
    write_scenes(tmp_path, ["2020-06-05", "2020-07-10", "2020-07-20"], ["B4", "B8"])
    provider = LocalProvider(tmp_path)
    sensor = SensorSpec("X", ("B4", "B8"), frames=3, composite="median")
    window = TemporalSpec.range("2020-06-01", "2020-09-01")
    with pytest.warns(UserWarning, match="1 of 3 frames"):
        patch = fetch_input(provider, centre_roi(), window, sensor)
    assert patch.data.shape[:2] == (3, 2) and patch.meta["frames_empty"] == [2]
    assert patch.meta["frames_requested"] == 3 and patch.meta["frames_with_data"] == 2
    # the mask is per frame: the empty bin is nodata, the others are imagery
    assert (patch.data[2] == sensor.fill_value).all() and patch.valid.shape == (3, 32, 32)
    assert patch.valid[:2].all() and not patch.valid[2].any()
    assert patch.meta["frame_nodata_fraction"] == [0.0, 0.0, 1.0]
    single = provider.fetch(centre_roi(), TemporalSpec.range("2020-07-01", "2020-08-01"),
                            SensorSpec("X", ("B4", "B8")))
    np.testing.assert_array_equal(patch.data[1], single.data)           # July = median of two scenes
    assert patch.meta["frame_windows"][0] == ["2020-06-01", "2020-07-01"]
    assert patch.meta["frame_dates"][0] == "2020-06-16"
    assert patch.meta["nodata_fraction"] == pytest.approx(1 / 3)


def test_every_bin_empty_raises_the_provider_error(tmp_path):
    write_scenes(tmp_path, ["2020-06-05"], ["B4"])
    with pytest.raises(ProviderError):
        fetch_input(LocalProvider(tmp_path), centre_roi(), TemporalSpec.range("2021-01-01", "2021-03-01"),
                    SensorSpec("X", ("B4",), frames=2))


def test_whole_months_are_cut_on_month_boundaries():
    wins = frame_windows(TemporalSpec.range("2022-01-01", "2022-07-01"), 3)
    assert [(w.start, w.end) for w in wins] == [("2022-01-01", "2022-03-01"), ("2022-03-01", "2022-05-01"),
                                                ("2022-05-01", "2022-07-01")]
    odd = frame_windows(TemporalSpec.range("2022-01-01", "2022-02-01"), 2)
    assert [(w.start, w.end) for w in odd] == [("2022-01-01", "2022-01-17"), ("2022-01-17", "2022-02-01")]


def test_temporal_none_for_time_series_models_follows_the_spec(tmp_path):
    """Archive backends: the documented default window (one calendar year), said once,
    binned into the model's frames. The local catalog is not filtered by time: a series
    cannot be binned without a window, so one composite of every scene stands for it,
    with a warning and frames requested vs fetched in meta."""
    from rs_embed.inference import run_window
    from rs_embed.models import galileo, olmoearth
    from rs_embed.models.base import DEFAULT_WINDOW

    for cls in (olmoearth.OlmoEarthEmbedder, galileo.GalileoEmbedder):
        d = cls.describe()["defaults"]["temporal"]
        assert d["gee"] == DEFAULT_WINDOW.to_dict() == d["stac"] and d["local"] is None
    emb = olmoearth.OlmoEarthEmbedder.__new__(olmoearth.OlmoEarthEmbedder)
    emb.config = olmoearth.OlmoEarthEmbedder.validate_config({})
    with pytest.warns(UserWarning, match="temporal=None: model 'olmoearth' on backend 'earth-search'"):
        window = run_window([emb], None, "earth-search")
    assert window == DEFAULT_WINDOW and len(frame_windows(window, emb.config["frames"])) == 12
    write_scenes(tmp_path, ["2020-06-05", "2020-07-10"], ["B4", "B8"])
    with pytest.warns(UserWarning, match="3-frame time series needs a temporal window"):
        patch = fetch_input(LocalProvider(tmp_path), centre_roi(), None, SensorSpec("X", ("B4", "B8"), frames=3))
    assert patch.data.shape[0] == 1 and patch.valid.shape == (1, 32, 32)
    assert patch.meta["frames_requested"] == 3 and patch.meta["frames"] == 1
    assert len(patch.meta["scenes"]) == 2  # every scene of the catalog
