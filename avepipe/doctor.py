"""``avepipe doctor``: what this machine offers, and whether every device on it computes the same features.

The CUDA paths of extraction were written without a GPU, and a wrong stream or a wrong
GPU gives features that look plausible. So the doctor extracts a few seconds of a
generated video with seeded random backbones on the CPU and on every visible GPU (under
torchrun: on the rank's own GPU), through the real pipeline (decode, batcher, streams),
and compares the maps with the CPU's: cosine and maximum relative error against
``TOLERANCE``, and the decoded frames byte for byte. It also reports frames/s per device
(fp32 and, on a GPU, the fast setting) and, under torchrun, whether each rank got a GPU
of its own. What it could not check on this machine it says so.
"""
from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

# fp32 on any device against fp32 on the CPU (TF32 off): the same network in a different summation
# order. Random He-initialised VGG-19 maps keep their scale through the 16 layers, so 1e-3 of the
# largest value leaves room for reordering and flags any other batch's or half-copied maps.
COSINE_MIN = 0.9999
MAX_RELATIVE_ERROR = 1e-3
SEED = 0


@dataclass
class DeviceRun:
    """One extraction of the clip: its features, the digest of the frames fed to the CNN, and its speed."""

    label: str
    device: torch.device
    visual: np.ndarray
    audio: np.ndarray
    frame_digest: str
    frames: int
    seconds: float

    @property
    def frames_per_s(self) -> float:
        return self.frames / max(self.seconds, 1e-9)


@dataclass
class Agreement:
    """How far ``run``'s features are from the reference's (the worst of visual and audio)."""

    cosine: float
    max_relative_error: float
    same_frames: bool

    @property
    def ok(self) -> bool:
        return self.same_frames and self.cosine >= COSINE_MIN and self.max_relative_error <= MAX_RELATIVE_ERROR

    def describe(self) -> str:
        return (f"cosine {self.cosine:.6f}, max relative error {self.max_relative_error:.2e}, decoded frames "
                + ("byte-identical" if self.same_frames else "DIFFERENT"))


def compare(run: DeviceRun, reference: DeviceRun) -> Agreement:
    """Minimum per-segment cosine and maximum |difference| / max |reference|, over visual and audio."""
    cosines, errors = [], []
    for ours, theirs in ((run.visual, reference.visual), (run.audio, reference.audio)):
        a = ours.reshape(len(ours), -1).astype(np.float64)
        b = theirs.reshape(len(theirs), -1).astype(np.float64)
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        cosines.append(float(np.min(np.sum(a * b, axis=1) / np.maximum(norms, 1e-30))))
        errors.append(float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30)))
    return Agreement(min(cosines), max(errors), run.frame_digest == reference.frame_digest)


def make_clip(folder: Path, seconds: int, variant: int = 0) -> Path:
    """``folder/doctor-VARIANT.mp4``: every frame differs (a moving gradient), every second sounds (a tone);
    clips of other variants differ in every frame and in pitch."""
    from avepipe.data.video_writer import tone, write_test_video

    rate, size = 16, 64
    ramp = np.linspace(0, 255, size, dtype=np.float64)
    frames = [np.stack([np.add.outer(ramp, ramp * 0.5 + 7 * i + 41 * variant) % 256,
                        np.add.outer(ramp * 0.3, ramp + 11 * i) % 256,
                        np.full((size, size), (29 * i + 83 * variant) % 256)], axis=-1).astype(np.uint8)
              for i in range(seconds * rate)]
    return write_test_video(folder / f"doctor-{variant}.mp4", frames, rate,
                            audio=tone(440.0 + 110 * variant, seconds))


def extract_on(clip: Path, device: torch.device, fps: int, precision: str = "fp32",
               batch_size: int | None = None) -> DeviceRun:
    """The clip's features on ``device``, as ``avepipe extract`` computes them (in this process)."""
    from avepipe.extract.backbones import build_encoders
    from avepipe.extract.batching import FrameBatcher, tune_for
    from avepipe.extract.scheduler import extract_stream
    from avepipe.extract.stream import FramePart, VideoFailed, in_process_messages

    tune_for(device)    # as avepipe extract does
    visual, audio, config = build_encoders(random_seed=SEED, device=device, fps=fps, precision=precision)
    digest = hashlib.sha256()
    frames = 0

    def messages() -> Iterator:
        nonlocal frames
        for message in in_process_messages([(0, clip)], config):
            yield message
            if isinstance(message, FramePart):
                digest.update(message.pixels.tobytes())
                frames += len(message.pixels)
                yield None    # "nothing decoded yet": the batcher drains, as with idle decoder workers

    started = time.perf_counter()
    batcher = FrameBatcher(visual, batch_size or visual.batch_size, precision)
    (_, features), = extract_stream(messages(), batcher, audio, config, {0: clip.stem})
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    if isinstance(features, VideoFailed):
        raise RuntimeError(f"{clip}: {features.reason}")
    label = f"{device} {precision} batch {batcher.batch_size}"
    return DeviceRun(label, device, features.visual, features.audio, digest.hexdigest(), frames, seconds)


def devices_to_check(ranks) -> list[torch.device]:
    """Every visible GPU; under torchrun only the rank's own (``select_device``)."""
    from avepipe.device import select_device

    if not torch.cuda.is_available():
        return []
    if ranks.distributed:
        return [select_device("cuda", ranks)]
    return [torch.device("cuda", index) for index in range(torch.cuda.device_count())]


def gpu_identity(device: torch.device) -> int:
    """A 48-bit number naming the physical GPU (from its UUID), equal across processes whatever they see."""
    properties = torch.cuda.get_device_properties(device)
    fallback = f"{properties.name}/{getattr(properties, 'pci_bus_id', device.index)}"    # torch without .uuid
    name = str(getattr(properties, "uuid", "")) or fallback
    return int(hashlib.sha256(name.encode()).hexdigest()[:12], 16)


@dataclass
class Report:
    """What ``diagnose`` found; ``ok`` is False when features disagreed or ranks shared a GPU."""

    lines: list[str]
    not_checked: list[str]
    ok: bool


def diagnose(seconds: int = 2, fps: int = 4, log: Callable[[str], None] = lambda line: None) -> Report:
    """Run every check this machine allows; ``log`` gets each line as it is known."""
    from avepipe import machine
    from avepipe.distributed import env_ranks
    from avepipe.extract.gpu_advice import fast_batch_size

    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        log(line)

    ranks = env_ranks()
    flags = set(machine.cpu_flags())
    say(f"CPU: {machine.cpu_model()}, {machine.usable_cpus()} usable CPU(s); "
        + ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in machine.CPU_FLAGS_OF_INTEREST))
    say("engines: " + ", ".join(f"{name} {value}" for name, value in machine.engines().items()))
    gpus = machine.gpu_lines()
    say("GPUs: " + ("; ".join(gpus) if gpus else "none visible to this process"))
    not_checked: list[str] = []
    ok = True
    with tempfile.TemporaryDirectory(prefix="avepipe-doctor-") as folder:
        clip = make_clip(Path(folder), seconds)
        say(f"clip: {seconds} s generated video, {fps} frames/s sampled, random backbones (seed {SEED})")
        reference = extract_on(clip, torch.device("cpu"), fps)
        again = extract_on(clip, torch.device("cpu"), fps, batch_size=3)   # other batch boundaries, same maps
        say(f"{reference.label}: {reference.frames_per_s:.2f} frames/s")
        agreement = compare(again, reference)
        ok &= agreement.ok
        say(f"{again.label} vs {reference.label}: {agreement.describe()}: {'ok' if agreement.ok else 'FAIL'}")
        devices = devices_to_check(ranks)
        for device in devices:
            extract_on(clip, device, fps)    # warm-up: CUDA context, cuDNN's kernel choice
            run = extract_on(clip, device, fps)
            agreement = compare(run, reference)
            ok &= agreement.ok
            say(f"{run.label}: {run.frames_per_s:.2f} frames/s; vs cpu: {agreement.describe()}: "
                + ("ok" if agreement.ok else "FAIL"))
            batch = fast_batch_size(torch.cuda.get_device_properties(device).total_memory)
            extract_on(clip, device, fps, "bf16", batch)
            fast = extract_on(clip, device, fps, "bf16", batch)
            say(f"{fast.label}: {fast.frames_per_s:.2f} frames/s ({fast.frames_per_s / run.frames_per_s:.2f}x "
                f"fp32); vs cpu fp32: {compare(fast, reference).describe()} (bf16 is expected to drift)")
        if not devices:
            not_checked.append("GPU features against the CPU's, and GPU frames/s (no GPU visible)")
        if ranks.distributed:
            ok &= _ranks_have_their_own_gpus(devices, ok, say)
            if not devices:
                not_checked.append("one GPU per rank (no GPU visible)")
        else:
            not_checked.append("one GPU per rank (not started by torchrun: run it as "
                               "torchrun --nproc-per-node N -m avepipe doctor)")
    return Report(lines, not_checked, ok)


def _ranks_have_their_own_gpus(devices: list[torch.device], ok: bool, say: Callable[[str], None]) -> bool:
    """Gather (features ok, GPU identity) of every rank over gloo, and judge them (``judge_ranks``)."""
    import torch.distributed as dist

    dist.init_process_group("gloo")
    try:
        mine = torch.tensor([float(ok), float(gpu_identity(devices[0])) if devices else -1.0], dtype=torch.float64)
        everyone = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
        dist.all_gather(everyone, mine)
    finally:
        dist.destroy_process_group()
    lines, fine = judge_ranks([(bool(t[0]), int(t[1])) for t in everyone])
    for line in lines:
        say(line)
    return fine


def judge_ranks(ranks: list[tuple[bool, int]]) -> tuple[list[str], bool]:
    """``(features ok, GPU identity or -1 for the CPU)`` per rank -> the lines to print and whether all is well."""
    owners: dict[int, list[int]] = {}
    for rank, (_, identity) in enumerate(ranks):
        if identity >= 0:
            owners.setdefault(identity, []).append(rank)
    shared = [group for group in owners.values() if len(group) > 1]
    bad = [rank for rank, (ok, _) in enumerate(ranks) if not ok]
    if not owners:
        lines = [f"ranks: {len(ranks)}, none on a GPU"]
    elif shared:
        lines = [f"ranks: {len(ranks)}, on {len(owners)} GPU(s): FAIL: ranks "
                 + "; ".join(", ".join(map(str, group)) for group in shared) + " share a GPU"]
    else:
        lines = [f"ranks: {len(ranks)}, on {len(owners)} GPU(s): one GPU per rank: ok"]
    if bad:
        lines.append("FAIL: features disagree on rank(s) " + ", ".join(map(str, bad)))
    return lines, not shared and not bad
