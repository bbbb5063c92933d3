"""Official AVE layout: byte-exact import/export round trip, the real float64 noisy audio file."""
from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from avepipe.errors import UserError
from avepipe.data.cache import FeatureCache
from avepipe.data.cache.ave import export_ave, import_ave
from avepipe.extract.provenance import AVE_RELEASED
from tests._paths import AVE_DIR, TEST_DATA_DIR

AVE = AVE_DIR
# Category names with spaces/commas/parentheses and a repeated VideoID, as in the real file.
ANNOTATIONS = """Church bell&RUhOCu3LNXM&good&0&10
Frying (food)&MH3m4AwEcRY&good&6&8
Rodents, rats, mice&2An2JMGMbbs&good&0&10
Church bell&MH3m4AwEcRY&good&1&3
Female speech, woman speaking&-9_5_2i4igQ&bad&2&9
"""
IDS = ["RUhOCu3LNXM", "MH3m4AwEcRY", "2An2JMGMbbs", "MH3m4AwEcRY#2", "-9_5_2i4igQ"]


def make_ave_dir(root: Path, dtype: str) -> dict[str, np.ndarray]:
    """A 5-video AVE-layout directory with random features of ``dtype`` plus labels and a split file."""
    root.mkdir()
    rng = np.random.default_rng(3)
    data = {"visual_feature.h5": rng.standard_normal((5, 10, 7, 7, 512)).astype(dtype),
            "audio_feature.h5": rng.standard_normal((5, 10, 128)).astype(dtype),
            "labels.h5": rng.integers(0, 2, (5, 10, 29)).astype(np.float32)}
    data["audio_feature.h5"][0, 0, 0] = -0.0          # byte-exact means signed zeros too
    for name, array in data.items():
        with h5py.File(root / name, "w") as f:
            f.create_dataset("avadataset", data=array)
    with h5py.File(root / "test_order.h5", "w") as f:
        f.create_dataset("order", data=np.array([4, 1], dtype=np.int64))
    (root / "Annotations.txt").write_text(ANNOTATIONS, encoding="utf-8")
    return data


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_import_export_round_trip_is_byte_exact(tmp_path, dtype):
    data = make_ave_dir(tmp_path / "ave", dtype)
    cache = tmp_path / "ave.h5"
    assert import_ave(tmp_path / "ave", cache, progress=False) == 5
    reader = FeatureCache(cache)
    assert reader.config == AVE_RELEASED
    assert reader.ids == sorted(IDS)
    assert reader.dtype == {"visual": dtype, "audio": dtype}
    video = reader.read("MH3m4AwEcRY#2")
    np.testing.assert_array_equal(video.visual, data["visual_feature.h5"][3].astype(np.float32))
    assert video.has_audio and video.has_video and video.duration == 10.0 and math.isnan(video.source_fps)
    assert import_ave(tmp_path / "ave", cache, progress=False) == 0        # resumable: nothing left to do

    out = tmp_path / "out"
    written = export_ave(cache, out, progress=False)
    assert {p.name for p in written} == {"visual_feature.h5", "audio_feature.h5", "labels.h5", "test_order.h5"}
    for name, array in data.items():
        with h5py.File(out / name, "r") as f:
            got = f["avadataset"][()]
        assert got.dtype == array.dtype and got.shape == array.shape
        assert got.tobytes() == array.tobytes(), name
    assert (out / "test_order.h5").read_bytes() == (tmp_path / "ave" / "test_order.h5").read_bytes()

    # Explicit row order from an annotation file gives the same bytes.
    export_ave(cache, tmp_path / "out2", annotations=tmp_path / "ave" / "Annotations.txt", progress=False)
    with h5py.File(tmp_path / "out2" / "audio_feature.h5", "r") as f:
        assert f["avadataset"][()].tobytes() == data["audio_feature.h5"].tobytes()


def test_import_float16_option_and_mismatched_annotations(tmp_path):
    data = make_ave_dir(tmp_path / "ave", "float64")
    import_ave(tmp_path / "ave", tmp_path / "half.h5", dtype="float16", progress=False)
    (raw,) = FeatureCache(tmp_path / "half.h5").read_arrays("2An2JMGMbbs", ("audio",), dtype=None)
    np.testing.assert_array_equal(raw, data["audio_feature.h5"][2].astype(np.float16))
    (tmp_path / "four.txt").write_text("".join(ANNOTATIONS.splitlines(keepends=True)[:4]))
    with pytest.raises(UserError, match=r"four.txt: 4 videos but .*visual_feature.h5 has 5 rows"):
        import_ave(tmp_path / "ave", tmp_path / "x.h5", annotations=tmp_path / "four.txt", progress=False)


def test_bad_shapes_are_user_errors(tmp_path):
    make_ave_dir(tmp_path / "ave", "float32")
    with h5py.File(tmp_path / "ave" / "audio_feature.h5", "w") as f:
        f.create_dataset("avadataset", data=np.zeros((5, 10, 64), np.float32))
    with pytest.raises(UserError, match=r"audio_feature.h5: 'avadataset' has shape \[5, 10, 64\], expected audio"):
        import_ave(tmp_path / "ave", tmp_path / "x.h5", progress=False)
    with pytest.raises(UserError, match=r"no_such_dir/visual_feature.h5: no such file"):
        import_ave(tmp_path / "no_such_dir", tmp_path / "x.h5", progress=False)


def test_real_noisy_audio_file_imports_audio_only(tmp_path):
    source = TEST_DATA_DIR / "audio_feature_noisy.h5"
    with h5py.File(source, "r") as f:
        expected = f["avadataset"][()]
    assert expected.dtype == np.float64 and expected.shape == (178, 10, 128)
    cache = tmp_path / "noisy.h5"
    added = import_ave(AVE, cache, modalities=("audio",), files={"audio": source}, row_ids=True,
                       progress=False)
    assert added == 178
    reader = FeatureCache(cache)
    assert reader.ids[:2] == ["row_00000", "row_00001"] and len(reader) == 178
    info = reader.info()
    assert info["no_video"] == 178 and info["no_audio"] == 0 and info["dtype"]["audio"] == "float64"
    assert info["size_bytes"] < 178 * 10 * 25088 * 4 / 10     # absent visual features take no space
    for row in (0, 77, 177):
        (audio,) = reader.read_arrays(f"row_{row:05d}", ("audio",), dtype=None)
        assert audio.dtype == np.float64 and audio.tobytes() == expected[row].tobytes()
        video = reader.read(f"row_{row:05d}")
        assert not video.has_video and not video.visual.any()
        np.testing.assert_array_equal(video.audio, expected[row].astype(np.float32))
    written = export_ave(cache, tmp_path / "out", progress=False)
    assert [p.name for p in written] == ["audio_feature.h5"]   # audio-only cache: no visual file
    with h5py.File(written[0], "r") as f:
        assert f["avadataset"].dtype == np.float64 and f["avadataset"][()].tobytes() == expected.tobytes()
    # Without --row-ids the 4,143-row Annotations.txt does not fit the 178 rows: a clear refusal.
    with pytest.raises(UserError, match=r"Annotations.txt: 4143 videos but .*audio_feature_noisy.h5 has 178 rows"):
        import_ave(AVE, tmp_path / "y.h5", modalities=("audio",), files={"audio": source}, progress=False)
