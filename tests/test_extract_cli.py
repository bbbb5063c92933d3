"""`avepipe extract` on folders: good and bad files mixed, resume, and kill -9 in the middle."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from avepipe.commands.extract import extract
from avepipe.data.cache import FeatureCache
from avepipe.data.video_writer import tone, write_test_video
from tests._extract_helpers import random_encoders, simple_clip

REPO = Path(__file__).resolve().parents[1]
FAST = ["--fps", "2", "--random-backbones", "0", "--device", "cpu"]


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mixed")
    (folder / "nested").mkdir()
    simple_clip(folder / "a clip with spaces é.mp4", seconds=2, fps=4)
    simple_clip(folder / "nested" / "Ünïcødé名前.mkv", seconds=1, fps=4, audio=False)
    (folder / "zero.mp4").write_bytes(b"")
    (folder / "readme.mp4").write_text("not a video at all\n" * 20)
    whole = simple_clip(folder / "whole.mp4", seconds=2, fps=4).read_bytes()
    (folder / "whole.mp4").unlink()
    (folder / "truncated.mp4").write_bytes(whole[: len(whole) // 2])
    with av.open(str(folder / "audio only.m4a"), "w") as container:
        stream = container.add_stream("aac", rate=16000, layout="mono")
        for start in range(0, 16000, 1024):
            frame = av.AudioFrame.from_ndarray(tone(440, 1024 / 16000)[None], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    rng = np.random.default_rng(0)
    noisy = write_test_video(folder / "noisy.mp4", rng.integers(0, 255, (30, 64, 64, 3), dtype=np.uint8), 10,
                             options={"g": "5"})
    with av.open(str(noisy)) as container:
        pos, size = [(p.pos, p.size) for p in container.demux(container.streams.video[0]) if p.size][12]
    data = bytearray(noisy.read_bytes())
    data[pos:pos + size] = rng.integers(0, 255, size, dtype=np.uint8).tobytes()
    noisy.write_bytes(bytes(data))
    return folder


def _invoke(args):
    random_encoders()  # torch and the backbones' modules imported once for the whole file
    return CliRunner().invoke(extract, [str(a) for a in args])


def test_mixed_folder_then_resume(mixed_folder, tmp_path):
    cache = tmp_path / "feats.h5"
    args = [mixed_folder, "-o", cache, "--extensions", "mp4,mkv,m4a", *FAST]
    result = _invoke(args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not an escaped error

    features = FeatureCache(cache)
    assert features.ids == sorted(["a clip with spaces é", "Ünïcødé名前", "noisy"])
    assert features.read("Ünïcødé名前").has_audio is False
    assert "decoded past 1 corrupt packet(s)" in features.read("noisy").notes

    reasons = {Path(e["path"]).name: e["reason"] for e in json.loads(Path(f"{cache}.errors.json").read_text())}
    assert reasons == {
        "zero.mp4": "empty file (0 bytes)",
        "readme.mp4": reasons["readme.mp4"],
        "truncated.mp4": reasons["truncated.mp4"],
        "audio only.m4a": "no video stream (contains: audio)",
    }
    assert reasons["readme.mp4"].startswith("not a media file FFmpeg can read")
    assert reasons["truncated.mp4"].startswith("damaged or truncated media file")
    for name, reason in reasons.items():
        assert f"{name}: {reason}" in result.output  # the one-line summary

    before = {vid: features.read(vid).visual.copy() for vid in features.ids}
    parts = sorted(p.name for p in Path(f"{cache}.parts").iterdir())
    again = _invoke(args)
    assert again.exit_code == 2  # the bad files still fail
    assert "extracted 0 video(s)" in again.output and "3 already there" in again.output
    assert sorted(p.name for p in Path(f"{cache}.parts").iterdir()) == parts
    after = FeatureCache(cache)
    for vid, visual in before.items():
        np.testing.assert_array_equal(after.read(vid).visual, visual)


def test_all_good_exits_zero_and_duplicate_ids_are_errors(tmp_path):
    folder = tmp_path / "videos"
    (folder / "x").mkdir(parents=True)
    simple_clip(folder / "one.mp4", seconds=1, fps=2, audio=False)
    result = _invoke([folder, "-o", tmp_path / "ok.h5", *FAST])
    assert result.exit_code == 0, result.output
    simple_clip(folder / "x" / "one.mkv", seconds=1, fps=2, audio=False)
    result = _invoke([folder, "-o", tmp_path / "dup.h5", *FAST])
    assert result.exit_code == 2
    assert "duplicate video id 'one'" in result.output


def test_usage_errors_are_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    result = _invoke([tmp_path / "empty", "-o", tmp_path / "c.h5", *FAST])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: ") and "no video files" in result.output


def test_help_explains_every_option():
    text = CliRunner().invoke(extract, ["--help"]).output
    for option in ["--fps", "--segments", "--preset", "--audio-backend", "--vgg-weights", "--vggish-weights",
                   "--random-backbones", "--dtype", "--device", "--batch-size", "--extensions", "--output"]:
        assert option in text


def test_kill_9_then_rerun(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    for index in range(6):
        simple_clip(folder / f"clip{index}.mp4", seconds=1, fps=2)
    cache = tmp_path / "feats.h5"
    # One frame per CNN batch, decoded in this process: videos finish one after another, so the kill
    # lands mid-run (with cross-video batches all six can finish within one polling interval).
    command = [sys.executable, "-m", "avepipe", "extract", str(folder), "-o", str(cache), *FAST,
               "--batch-size", "1", "--workers", "0"]
    env = os.environ.copy()
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and process.poll() is None:
            parts = Path(f"{cache}.parts")
            if parts.is_dir() and any(p.name.startswith("v-") for p in parts.iterdir()):
                break
            time.sleep(0.02)
        assert process.poll() is None, "extract finished before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    first = FeatureCache(cache)
    assert 0 < len(first) < 6
    with h5py.File(cache, "r"):
        pass

    rerun = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert "Traceback" not in rerun.stderr
    assert f"{len(first)} already there" in rerun.stderr
    final = FeatureCache(cache)
    assert final.ids == [f"clip{i}" for i in range(6)]
    assert len(list(Path(f"{cache}.parts").glob("v-*.h5"))) == 6


@pytest.mark.parametrize("preset, expected", [(None, 30.0), ("2", 2.0)])
def test_progress_updates_every_30_s_when_stderr_is_a_log(preset, expected):
    """Not a terminal: tqdm's default 0.1 s would write ten progress lines a second into the log."""
    env = {k: v for k, v in os.environ.items() if k != "TQDM_MININTERVAL"}
    if preset:
        env["TQDM_MININTERVAL"] = preset
    probe = "import io, avepipe.cli, tqdm; print(tqdm.tqdm([], file=io.StringIO()).mininterval)"
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) == expected
