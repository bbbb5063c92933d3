"""CacheSet, the one reader over several caches: one extractor, and a video in two caches is refused everywhere."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from avepipe.cli import main
from avepipe.data.annotations import Annotations, VideoRecord
from avepipe.data.cache import CacheSet, CacheWriter
from avepipe.data.dataset import FeatureDataset
from avepipe.errors import UserError
from tests._cache_helpers import CONFIG, make_features
from tests._legacy_cache import LEGACY_DIR


def _cache(path, ids, config=CONFIG, dtype="float32", segments=3):
    with CacheWriter(path, config, dtype) as writer:
        for video_id in ids:
            writer.write(make_features(video_id, segments))
    return path


def test_disjoint_caches_read_as_one(tmp_path):
    first = _cache(tmp_path / "a.h5", ["v1", "v3"])
    second = _cache(tmp_path / "b.h5", ["v2"], dtype="float16", segments=2)
    caches = CacheSet([first, second])
    assert caches.ids == ["v1", "v2", "v3"] and len(caches) == 3 and "v2" in caches and "v4" not in caches
    assert caches.config == CONFIG and caches.paths == [first, second]
    assert caches.cache_of("v2").path == second and caches.summary("v2").segments == 2
    np.testing.assert_array_equal(caches.read("v3").audio, make_features("v3").audio)
    visual, = caches.read_arrays("v2", ("visual",), dtype=None)
    assert visual.dtype == np.float16
    np.testing.assert_array_equal(visual, make_features("v2", 2).visual.astype(np.float16))
    with pytest.raises(KeyError, match="'v4' is in none of the caches"):
        caches.read("v4")


def test_a_video_in_two_caches_is_refused_naming_both(tmp_path):
    train = _cache(tmp_path / "train.h5", ["v1", "shared"])
    test = _cache(tmp_path / "test.h5", ["v2", "shared"])
    with pytest.raises(UserError) as refused:
        CacheSet([train, test])
    assert str(refused.value) == (f"{test}: video 'shared' is also in {train}; a video may be in only one of the "
                                  f"caches read together (remove it from one)")


def test_the_training_dataset_applies_the_same_rule(tmp_path):
    """Before, FeatureDataset silently read the first cache's copy; a background cache counts too."""
    main_cache = _cache(tmp_path / "main.h5", ["v1", "v2"])
    other = _cache(tmp_path / "other.h5", ["v2"])
    annotations = Annotations([VideoRecord("v1", "v1", ()), VideoRecord("v2", "v2", ())], ["dog"])
    expected = f"{other}: video 'v2' is also in {main_cache}"
    with pytest.raises(UserError, match=expected):
        FeatureDataset([main_cache, other], annotations, ["v1"])
    with pytest.raises(UserError, match=expected):
        FeatureDataset([main_cache], annotations, ["v1"], background_caches=[other])


def test_caches_of_different_extractors_are_refused(tmp_path):
    first = _cache(tmp_path / "a.h5", ["v1"])
    second = _cache(tmp_path / "b.h5", ["v2"], config=replace(CONFIG, fps=8))
    with pytest.raises(UserError) as refused:
        CacheSet([first, second])
    assert str(refused.value) == (f"{second}: features from a different extractor than {first} "
                                  f"({second} vs {first}: fps: 8 vs 16); they cannot be mixed")


def test_legacy_caches_sharing_a_video_are_refused():
    """The committed 0ea6ca6 caches both hold 'alpha'; each opens alone, together they are refused."""
    assert len(CacheSet(LEGACY_DIR / "f32.h5")) == 2
    with pytest.raises(UserError, match=f"{LEGACY_DIR / 'f16.h5'}: video 'alpha' is also in {LEGACY_DIR / 'f32.h5'}"):
        CacheSet([LEGACY_DIR / "f32.h5", LEGACY_DIR / "f16.h5"])


def test_cli_reports_the_duplicate_as_one_line(tmp_path):
    first = _cache(tmp_path / "a.h5", ["v1", "shared"])
    second = _cache(tmp_path / "b.h5", ["shared"])
    result = CliRunner().invoke(main, ["train", str(first), str(second), "--annotations", "ave", "-o",
                                       str(tmp_path / "run"), "--epochs", "1"])
    assert result.exit_code == 2
    assert result.output == f"error: {second}: video 'shared' is also in {first}; a video may be in only one of " \
                            f"the caches read together (remove it from one)\n"
