"""VGG-19 (through pool5) on CPU, engine by engine: speed as a ratio to torch fp32 and agreement of the maps.

Engines, all on the same seeded weights (``build_encoders(random_seed=0)``; the speed of a
convolution does not depend on its weights) and the same preprocessed frames:

- ``torch_fp32_contiguous``: NCHW memory, the reference;
- ``torch_fp32_channels_last``: the module run eagerly, channels-last (``--engine torch-eager``; the
  CPU default until 2026-12-02);
- ``avepipe_default`` / ``avepipe_default_bf16``: what ``avepipe extract`` runs here (``--engine auto``,
  ``extract/cpu_engine.py``; the engine it chose is in ``notes``): OpenVINO f32 when installed, else
  ``torch_jit``; bf16 always ``torch_jit_bf16``;
- ``torch_jit``: ``--engine torch-jit``: traced, frozen and optimised for inference, oneDNN
  convolutions with prepacked weights;
- ``torch_mkldnn`` (and ``torch_mkldnn_bf16``, reduced): ``torch.utils.mkldnn.to_mkldnn`` of the
  module (oneDNN tensors throughout);
- ``torch_compile``: ``torch.compile`` of the channels-last module (``--compile``; its compile time is reported);
- ``onnxruntime_fp32`` and ``openvino_f32``: the module exported to ONNX, run by those runtimes
  (optional: skipped with a note when not installed);
- reduced precision: ``torch_bf16_autocast`` (eager), ``torch_jit_bf16`` (traced under bf16
  autocast) and ``openvino_bf16``.

``default_over_best_exact`` and ``bf16_default_over_best_reduced`` are the targets of issue 25
(>= 0.9 each). Earlier lines of the results file (before ``default_engine`` was printed) name
``torch_fp32_channels_last`` the default and give ``bf16_autocast_over_best_reduced``; the line
before those with ``avepipe_default`` called ``torch_jit`` the default.

Speeds compare the medians of this process's CPU time per call (``--clock cpu``, the default:
on a machine shared with other jobs, wall time also counts the time spent waiting for a core,
which swung single rounds 1-6 s for the same engine); wall-time ratios are printed beside them.
With one thread every engine computes in one thread, so CPU time is its compute time.
Exact engines report the max abs difference of their maps from the reference, also relative to
the largest activation; reduced ones the mean and minimum cosine per frame. Timed rounds
alternate engine by engine (A B C ... A B C ...), medians reported, all in one process with
the same torch / runtime thread count. Prints one JSON line. Not run by the tests.

    OMP_NUM_THREADS=1 python benchmarks/vgg_engines.py [--frames 8] [--rounds 3] [--threads 1]
        [--clock cpu|wall] [--no-compile] [--only ENGINE,...]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._machine import machine  # noqa: E402
from avepipe.extract.backbones import build_encoders  # noqa: E402
from avepipe.extract.cpu_engine import frozen, prepare  # noqa: E402

REFERENCE = "torch_fp32_contiguous"
DEFAULT = "avepipe_default"             # what `avepipe extract` runs on this CPU (extract/cpu_engine.py), fp32
DEFAULT_BF16 = "avepipe_default_bf16"   # the same under --precision bf16
REDUCED = ("torch_bf16_autocast", "torch_jit_bf16", DEFAULT_BF16, "torch_mkldnn_bf16", "openvino_bf16")


def _torch_engine(features, memory_format, bf16: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    def run(images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(images).contiguous(memory_format=memory_format)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return features(x).float().contiguous().numpy()
    return run


def _mkldnn(features, dtype=torch.float32) -> Callable[[np.ndarray], np.ndarray]:
    """torch.utils.mkldnn.to_mkldnn: the module's weights as oneDNN tensors (of ``dtype``), inputs converted per call."""
    from torch.utils import mkldnn as mkldnn_utils
    module = mkldnn_utils.to_mkldnn(_copy(features).eval(), dtype)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(x).to_mkldnn(dtype)).to_dense().float().numpy()
    return run


def _onnx_file(features, images: np.ndarray, folder: Path) -> Path:
    path = folder / "vgg19.onnx"
    torch.onnx.export(features, (torch.from_numpy(images),), str(path), input_names=["images"],
                      output_names=["maps"], dynamic_axes={"images": {0: "n"}, "maps": {0: "n"}}, dynamo=False)
    return path


def _onnxruntime(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda images: session.run(None, {"images": images})[0]


def _openvino(path: Path, threads: int, precision: str):
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                         "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()
    return lambda images: request.infer({0: images})[0].copy()


def engines(features, images: np.ndarray, threads: int, compile_: bool, folder: Path, notes: dict) -> dict:
    contiguous = features
    try:        # first: after TorchScript freezing the exporter met mkldnn ops
        onnx = _onnx_file(contiguous, images, folder)
    except Exception as exc:        # torch's exporter needs the onnx package; the ONNX engines are then left out
        onnx, notes["onnx_export"] = None, f"failed: {type(exc).__name__}: {str(exc)[:200]}"
    channels_last = _copy(features).to(memory_format=torch.channels_last)
    found = {REFERENCE: _torch_engine(contiguous, torch.contiguous_format),
             "torch_fp32_channels_last": _torch_engine(channels_last, torch.channels_last),
             "torch_bf16_autocast": _torch_engine(channels_last, torch.channels_last, bf16=True)}
    for precision, name in (("fp32", DEFAULT), ("bf16", DEFAULT_BF16)):
        module, notes[f"{name}_engine"] = prepare(_copy(channels_last), "auto", torch.device("cpu"), precision)
        found[name] = _torch_engine(module, torch.channels_last, bf16=precision == "bf16")
    for name, make in (("torch_jit", lambda: _torch_engine(frozen(_copy(channels_last), "fp32"), torch.channels_last)),
                       ("torch_jit_bf16", lambda: _torch_engine(frozen(_copy(channels_last), "bf16"), torch.channels_last,
                                                                bf16=True)),
                       ("torch_mkldnn", lambda: _mkldnn(features)),
                       ("torch_mkldnn_bf16", lambda: _mkldnn(features, torch.bfloat16))):
        try:
            found[name] = make()
        except Exception as exc:        # a benchmark reports what failed instead of stopping
            notes[name] = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
    if compile_:
        started = time.perf_counter()
        try:
            compiled = torch.compile(_copy(channels_last))
            run = _torch_engine(compiled, torch.channels_last)
            run(images)
            found["torch_compile"] = run
            notes["torch_compile_s"] = time.perf_counter() - started
        except Exception as exc:        # a benchmark reports what failed instead of stopping
            notes["torch_compile"] = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
    for name, make in (("onnxruntime_fp32", lambda: _onnxruntime(onnx, threads)),
                       ("openvino_f32", lambda: _openvino(onnx, threads, "f32")),
                       ("openvino_bf16", lambda: _openvino(onnx, threads, "bf16"))):
        if onnx is None:
            notes[name] = "not run: no ONNX file (see onnx_export)"
            continue
        try:
            found[name] = make()
        except ImportError as exc:
            notes[name] = f"not installed: {exc}"
    return found


def _copy(module):
    import copy
    return copy.deepcopy(module)


def agreement(maps: np.ndarray, reference: np.ndarray) -> dict:
    a, b = maps.reshape(len(maps), -1).astype(np.float64), reference.reshape(len(reference), -1).astype(np.float64)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    diff = float(np.abs(a - b).max())
    return {"max_abs_diff": diff, "max_abs_diff_over_max_activation": diff / float(np.abs(b).max()),
            "cosine_mean": float(cos.mean()), "cosine_min": float(cos.min())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8, help="frames per timed call (one batch)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="skip torch.compile")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="what the speeds compare: this process's CPU time (default: on a shared machine time "
                             "spent waiting for a core is not the engine's) or wall time (both are printed)")
    parser.add_argument("--only", help="comma-separated engines to time (the reference and the defaults always)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    visual, _, _ = build_encoders(random_seed=0, device="cpu", engine="torch-eager")
    features = _copy(visual.features).to(memory_format=torch.contiguous_format).eval()
    pixels = np.random.default_rng(0).integers(0, 256, (args.frames, 224, 224, 3), dtype=np.uint8)
    with torch.inference_mode():
        images = visual.preprocess(torch.from_numpy(pixels)).contiguous().numpy()
    notes: dict = {}
    with tempfile.TemporaryDirectory() as folder:
        runs = engines(features, images, args.threads, args.compile, Path(folder), notes)
        if args.only:
            keep = {REFERENCE, "torch_fp32_channels_last", DEFAULT, DEFAULT_BF16, *args.only.split(",")}
            runs = {name: run for name, run in runs.items() if name in keep}
        maps = {name: run(images) for name, run in runs.items()}     # also each engine's warm-up
        times: dict[str, list[float]] = {name: [] for name in runs}
        cpu_times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, run in runs.items():
                started, cpu_started = time.perf_counter(), time.process_time()
                run(images)
                times[name].append(time.perf_counter() - started)
                cpu_times[name].append(time.process_time() - cpu_started)
    reference = maps[REFERENCE]
    wall = {name: statistics.median(t) for name, t in times.items()}
    median = {name: statistics.median(t) for name, t in (cpu_times if args.clock == "cpu" else times).items()}
    figures = {name: {"frames_per_s": args.frames / median[name], "speed_over_reference": median[REFERENCE] / median[name],
                      "wall_speed_over_reference": wall[REFERENCE] / wall[name],
                      "seconds": times[name], "cpu_seconds": cpu_times[name], **agreement(maps[name], reference)} for name in runs}
    exact = {n: f for n, f in figures.items() if n not in REDUCED and f["max_abs_diff_over_max_activation"] < 1e-5}
    best_exact = max(exact, key=lambda n: exact[n]["speed_over_reference"])
    reduced = [n for n in REDUCED if n in figures]
    best_reduced = max(reduced, key=lambda n: figures[n]["speed_over_reference"])
    print(json.dumps({
        "benchmark": "vgg_engines", "date": time.strftime("%Y-%m-%d"), "machine": machine(),
        "threads": args.threads, "clock": args.clock, "frames": args.frames, "rounds": args.rounds, "weights": "random:0",
        "engines": figures, "notes": notes, "best_exact": best_exact, "best_reduced": best_reduced,
        "default_engine": DEFAULT, "default_bf16_engine": DEFAULT_BF16,
        "default_over_best_exact": figures[DEFAULT]["speed_over_reference"] / exact[best_exact]["speed_over_reference"],
        "bf16_default_over_best_reduced": figures[DEFAULT_BF16]["speed_over_reference"]
        / figures[best_reduced]["speed_over_reference"],
        "channels_last_eager_over_best_exact": figures["torch_fp32_channels_last"]["speed_over_reference"]
        / exact[best_exact]["speed_over_reference"],
        "bf16_default_over_fp32_default": figures[DEFAULT_BF16]["speed_over_reference"]
        / figures[DEFAULT]["speed_over_reference"],
        "load_avg_after": list(__import__("os").getloadavg()),
    }))


if __name__ == "__main__":
    main()
