"""``avepipe cache info|export-ave|import-ave`` through click's CliRunner."""
from __future__ import annotations

import json

import h5py
import numpy as np
from click.testing import CliRunner

from avepipe.commands.cache import cache
from avepipe.data.cache import CacheWriter
from tests._cache_helpers import CONFIG, make_features
from tests.test_cache_ave import IDS, make_ave_dir
from tests._paths import AVE_DIR, TEST_DATA_DIR

NOISY_AUDIO = TEST_DATA_DIR / "audio_feature_noisy.h5"


def test_info_text_and_json(tmp_path):
    path = tmp_path / "feats.h5"
    with CacheWriter(path, CONFIG) as writer:
        writer.write(make_features("a", segments=3))
        writer.write(make_features("b", segments=5, has_audio=False))
    runner = CliRunner()
    result = runner.invoke(cache, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["videos"] == 2 and summary["segments_histogram"] == {"3": 1, "5": 1} and summary["no_audio"] == 1
    text = runner.invoke(cache, ["info", str(path)]).output
    assert "videos:       2 (8 segments)" in text and "RANDOM backbones" in text and "fps: 16" in text


def test_import_then_export_round_trip(tmp_path):
    data = make_ave_dir(tmp_path / "ave", "float64")
    runner = CliRunner()
    result = runner.invoke(cache, ["import-ave", str(tmp_path / "ave"), "-o", str(tmp_path / "ave.h5")])
    assert result.exit_code == 0, result.output
    assert "imported 5 videos" in result.output
    info = json.loads(runner.invoke(cache, ["info", str(tmp_path / "ave.h5"), "--json"]).output)
    assert info["videos"] == len(IDS) and info["extractor"]["visual_preset"] == "ave"
    result = runner.invoke(cache, ["export-ave", str(tmp_path / "ave.h5"), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "out" / "visual_feature.h5", "r") as f:
        assert f["avadataset"][()].tobytes() == data["visual_feature.h5"].tobytes()


def test_audio_only_import_of_the_real_noisy_file(tmp_path):
    result = CliRunner().invoke(cache, ["import-ave", str(AVE_DIR), "--audio-file", str(NOISY_AUDIO),
                                        "--audio-only", "--row-ids", "-o", str(tmp_path / "noisy.h5")])
    assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "noisy.h5", "r") as f, h5py.File(NOISY_AUDIO) as src:
        np.testing.assert_array_equal(f["videos"]["row_00005"]["audio"][()], src["avadataset"][5])


def test_bad_inputs_give_one_line_errors(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cache, ["info", str(tmp_path / "missing.h5")])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.strip() == f"error: {tmp_path / 'missing.h5'}: no feature cache here " \
                                    f"(neither the file nor missing.h5.parts/ exists)"
    make_ave_dir(tmp_path / "ave", "float32")
    with h5py.File(tmp_path / "ave" / "visual_feature.h5", "w") as f:
        f.create_dataset("avadataset", data=np.zeros((5, 10, 7, 7, 256), np.float32))
    result = runner.invoke(cache, ["import-ave", str(tmp_path / "ave"), "-o", str(tmp_path / "x.h5")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: {tmp_path / 'ave' / 'visual_feature.h5'}: 'avadataset' has shape "
                     f"[5, 10, 7, 7, 256], expected visual features [N, T, 7, 7, 512]"]
    result = runner.invoke(cache, ["export-ave", str(tmp_path / "missing.h5"), str(tmp_path / "out")])
    assert result.exit_code == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.output


def test_every_command_has_help():
    runner = CliRunner()
    for args, phrase in [(["--help"], "AVE layout"), (["info", "--help"], "--json"),
                         (["export-ave", "--help"], "--annotations"), (["import-ave", "--help"], "--row-ids")]:
        result = runner.invoke(cache, args)
        assert result.exit_code == 0 and phrase in result.output
