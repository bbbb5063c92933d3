"""How far each preset is from the original AVE recipe, on clips whose content is known.

Prints ONE JSON line. Per frame rate (10-second lossless clips, a different picture in
every frame, a different tone in every 0.96 s window), against the re-implemented
original recipe of benchmarks/_ave_reference.py (FFmpeg reader, OpenCV, VGGish reference input):
- frames_equal: of the 160 targets, how many get byte-identical 224x224 pixels, for
  `--preset ave`, for its frame choice with FFmpeg's scaler, and for PTS-timed choice;
- pool5_cosine_ffmpeg_resize: cosine of Keras VGG-19 pool5 maps (seeded random weights)
  of the same frames resized by FFmpeg's scaler vs OpenCV (mean and min over 4 frames);
- audio: centred cosine per second between seeded-VGGish embeddings of the recipe's
  examples and of `--preset ave` / of the default per-second framing of the same
  16 kHz waveform (the framing alone, not the default's resampler).
Needs the dev extra (imageio-ffmpeg, opencv-python-headless, torchvggish, resampy).
Run: nice -n 10 .venv/bin/python -m benchmarks.preset_ave_fidelity
"""
from __future__ import annotations

import datetime
import json
import tempfile
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from avepipe.extract.backbones import _he_init, _seeded
from avepipe.extract.logmel import EXAMPLE_HOP, log_mel_examples
from avepipe.extract.vggish import VGGish
from benchmarks._machine import machine
from benchmarks._ave_reference import keras_vgg19, original_examples, original_frames, write_clip
from benchmarks._backbones_helpers import random_keras_weights, write_keras_notop
from benchmarks._ave_extraction import AVE, mismatches, recipe_output

FPS = [Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30)]


def centred_cosines(a: np.ndarray, b: np.ndarray) -> list[float]:
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    return [round(float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y))), 4) for x, y in zip(a, b)]


def main() -> None:
    vggish = _seeded(VGGish, _he_init, 5).eval()
    embed = lambda examples: vggish(torch.from_numpy(examples).float()[:, None]).numpy()  # noqa: E731
    results = {}
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        tmp = Path(tmp)
        pool5 = keras_vgg19(write_keras_notop(tmp / "notop.h5", random_keras_weights(seed=3)))
        for fps in FPS:
            clip = write_clip(tmp / f"clip{float(fps):.2f}.mkv", fps, 10)
            reference = original_frames(clip)
            frames, waveform, _ = recipe_output(clip)
            scaled, _, _ = recipe_output(clip, replace(AVE, frame_resize="ffmpeg-bilinear"))
            timed, _, _ = recipe_output(clip, replace(AVE, frame_sampling="pts", segments=10))
            cosines = []
            for k in (0, 50, 100, 150):  # the same decoded frame, resized two ways
                ours, ref = pool5(scaled[k]).ravel(), pool5(frames[k]).ravel()
                cosines.append(float(ours @ ref / (np.linalg.norm(ours) * np.linalg.norm(ref))))
            expected = embed(original_examples(clip, tmp))
            results[f"{float(fps):.2f}"] = {
                "frames_equal": {"ave": 160 - len(mismatches(frames, reference)),
                                 "ffmpeg_resize": 160 - len(mismatches(scaled, reference)),
                                 "pts_timed": 160 - len(mismatches(timed, reference))},
                "pool5_cosine_ffmpeg_resize": {"mean": round(float(np.mean(cosines)), 4),
                                               "min": round(float(np.min(cosines)), 4)},
                "audio_centred_cosine": {
                    "ave": centred_cosines(embed(log_mel_examples(waveform, 10, EXAMPLE_HOP)), expected),
                    "per_second_framing": centred_cosines(embed(log_mel_examples(waveform, 10)), expected)},
            }
    print(json.dumps({"benchmark": "preset_ave_fidelity", "date": datetime.date.today().isoformat(),
                      "machine": machine(), "results": results}))


if __name__ == "__main__":
    main()
