"""A synthetic AVE-like dataset made of real MP4 files whose labels are known exactly.

Every class is a visual object (colour + shape + stripe texture, moving) paired
with a sound (its own frequency band and pattern: steady tone, rhythm, chirp or
noise band). Following the AVE definition, a second is labelled with a class
only when that class's object is visible AND its sound audible; it is
background when neither is present, only one is, or a mismatched object/sound
pair is present. Silent distractor objects of other classes, sounds of other
classes without their object, a drifting background and noise keep it from
being trivial, while colour and spectrum (what random-weight CNN features keep)
stay strongly class-specific so a PSP model on random backbones can learn it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from avepipe.errors import UserError
from avepipe.data.annotations import BACKGROUND, Annotations, load_ave_annotations
from avepipe.data.splits import DEFAULT_FRACTIONS, SPLIT_NAMES, order_path, random_split, write_splits
from avepipe.data.video_writer import write_test_video

# name, RGB; colours are far apart in hue and brightness so they survive random conv features.
PALETTE = [
    ("Red", (230, 30, 30)), ("Green", (30, 200, 40)), ("Blue", (40, 70, 240)), ("Yellow", (240, 220, 30)),
    ("Magenta", (220, 40, 220)), ("Cyan", (30, 210, 220)), ("Orange", (250, 140, 20)),
    ("Purple", (120, 40, 170)), ("White", (250, 250, 250)), ("Brown", (110, 60, 20)),
]
SHAPES = ["circle", "square", "diamond", "ring", "cross", "triangle"]
SOUND_PATTERNS = ["steady tone", "rhythm", "chirp", "noise band"]
MAX_CLASSES = len(PALETTE)
# Class centre frequencies are log-spaced over this range, as far apart as the class count allows
# (x2.5 for 4 classes, x1.36 for 10), so their mel spectra barely overlap.
LOWEST_HZ, HIGHEST_HZ = 250.0, 4000.0

# What a non-event second shows; every event video cycles through all of them.
CASES = ("none", "object_only", "sound_only", "mismatch")
# Radius of the main objects as a share of min(width, height). 0.12 (a circle covers ~3-5% of
# a 4:3 frame) keeps the best single fixed cell below 0.4 peak-in-box on the boxes, so a
# localiser must find the object; 0.33 (a quarter of the frame or more) is the earlier size
# whose boxes a centre prior nearly always hits.
OBJECT_SIZE = 0.12
LARGE_OBJECT_SIZE = 0.33
DISTRACTOR_SHARE = 0.6   # distractor radius relative to the main objects
DISTRACTOR_PROB = 0.35
SOUND_RMS = 0.2
NOISE_RMS = 0.02


@dataclass(frozen=True)
class SynthClass:
    """One event class: what its object looks like and what it sounds like."""

    index: int
    colour_name: str
    rgb: tuple[int, int, int]
    shape: str
    pattern: str
    centre_hz: int

    @property
    def name(self) -> str:
        return f"{self.colour_name} {self.shape} ({self.pattern}, {self.centre_hz} Hz)"


def synth_classes(count: int) -> list[SynthClass]:
    if not 1 <= count <= MAX_CLASSES:
        raise UserError(f"--classes must be between 1 and {MAX_CLASSES}, got {count}")
    centres = np.geomspace(LOWEST_HZ, HIGHEST_HZ, count) if count > 1 else [1000.0]
    return [SynthClass(k, PALETTE[k][0], PALETTE[k][1], SHAPES[k % len(SHAPES)],
                       SOUND_PATTERNS[k % len(SOUND_PATTERNS)], int(round(centres[k]))) for k in range(count)]


@dataclass
class SecondPlan:
    """What is on screen and in the sound track during one second."""

    case: str                       # "event" or one of CASES
    visible: list[int]              # classes whose (main-size) object is shown
    audible: list[int]              # classes whose sound plays
    distractor: int | None = None   # a silent, smaller object of another class

    @property
    def label(self) -> int | None:
        pair = set(self.visible) & set(self.audible)
        return pair.pop() if pair else None


@dataclass
class SynthDataset:
    """Paths and labels of a generated set."""

    root: Path
    videos: dict[str, Path]
    annotations_path: Path
    csv_path: Path
    boxes_path: Path
    scenes_path: Path
    split_paths: dict[str, Path]
    classes: list[SynthClass]
    splits: dict[str, list[str]] = field(default_factory=dict)

    def annotations(self) -> Annotations:
        return load_ave_annotations(self.annotations_path, [c.name for c in self.classes])


def _check_arguments(videos: int, seconds: int, fps: int, size: tuple[int, int], channels: int,
                     object_size: float) -> None:
    if videos < 1 or seconds < 1 or fps < 1:
        raise UserError("--videos, --seconds and --fps must be at least 1")
    if not 0.02 <= object_size <= 0.5:
        raise UserError(f"--object-size must be between 0.02 and 0.5 (radius / shorter side), got {object_size}")
    width, height = size
    if width < 32 or height < 32:
        raise UserError(f"--size must be at least 32x32, got {width}x{height}")
    if channels not in (1, 2):
        raise UserError(f"--channels must be 1 or 2, got {channels}")


def generate_dataset(out_dir: str | Path, videos: int = 40, classes: int = 4, seconds: int = 10, seed: int = 0,
                     size: tuple[int, int] = (160, 120), fps: int = 8, sample_rate: int = 16000,
                     channels: int = 1, background_fraction: float = 0.15,
                     split_fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
                     object_size: float = OBJECT_SIZE, progress: bool = True) -> SynthDataset:
    """Write ``videos`` MP4 files plus ``Annotations.txt``, ``annotations.csv``, ``*_order.h5``,
    ``boxes.json``, ``frame_boxes.json`` and ``scenes.json`` into ``out_dir``. Same arguments,
    same labels and pixels."""
    _check_arguments(videos, seconds, fps, size, channels, object_size)
    width, height = size
    class_list = synth_classes(classes)
    root = Path(out_dir)
    (root / "videos").mkdir(parents=True, exist_ok=True)

    ave_lines, csv_lines = [], ["video_id,start,end,label"]
    boxes, frame_boxes, scenes, paths = {}, {}, {}, {}
    for i in tqdm(range(videos), desc="synth", unit="video", disable=not progress):
        video_id = f"synth{i:05d}"
        rng = np.random.default_rng([seed, i])
        event_class, interval, plan = _plan_video(rng, classes, seconds, background_fraction)
        frames, video_boxes, frame_boxes[video_id] = _render_video(rng, plan, class_list, width, height, fps,
                                                                   object_size)
        audio = _render_audio(rng, plan, class_list, sample_rate, channels)
        paths[video_id] = write_test_video(root / "videos" / f"{video_id}.mp4", frames, fps, audio=audio,
                                           sample_rate=sample_rate, options={"crf": "18", "preset": "veryfast"})
        if event_class is None:
            ave_lines.append(f"{BACKGROUND}&{video_id}&good&0&0")
            csv_lines.append(f"{video_id},,,")
        else:
            name = class_list[event_class].name
            ave_lines.append(f"{name}&{video_id}&good&{interval[0]}&{interval[1]}")
            csv_lines.append(f'{video_id},{interval[0]},{interval[1]},"{name}"')
        boxes[video_id] = video_boxes
        scenes[video_id] = [{"case": s.case, "label": None if s.label is None else class_list[s.label].name,
                             "visible": [class_list[k].name for k in s.visible],
                             "audible": [class_list[k].name for k in s.audible],
                             "distractor": None if s.distractor is None else class_list[s.distractor].name}
                            for s in plan]

    annotations_path = root / "Annotations.txt"
    annotations_path.write_text("\n".join(ave_lines) + "\n", encoding="utf-8")
    csv_path = root / "annotations.csv"
    csv_path.write_text("\n".join(csv_lines) + "\n", encoding="utf-8")
    boxes_path = root / "boxes.json"
    boxes_path.write_text(json.dumps(boxes, indent=1))
    (root / "frame_boxes.json").write_text(json.dumps({"size": [width, height], "fps": fps,
                                                        "videos": frame_boxes}))
    scenes_path = root / "scenes.json"
    scenes_path.write_text(json.dumps({"size": [width, height], "fps": fps, "sample_rate": sample_rate,
                                       "classes": [c.name for c in class_list], "videos": scenes}, indent=1))
    annotations = load_ave_annotations(annotations_path, [c.name for c in class_list])
    splits = random_split(annotations, split_fractions, seed=seed)
    write_splits(root, annotations, splits)
    return SynthDataset(root, paths, annotations_path, csv_path, boxes_path, scenes_path,
                        {name: order_path(root, name) for name in SPLIT_NAMES}, class_list, splits)


# -- planning -----------------------------------------------------------------------------------

def _plan_video(rng: np.random.Generator, classes: int, seconds: int, background_fraction: float):
    """(event class or None, (start, end), per-second plans): one contiguous event, like AVE."""
    is_background = rng.random() < background_fraction
    event_class = None if is_background else int(rng.integers(classes))
    if event_class is None:
        start = end = 0
    else:
        # shorter than AVE's typical event so that background seconds (and all their cases) are common
        length = int(rng.integers(min(2, seconds), max(2, int(np.ceil(0.7 * seconds))) + 1))
        start = int(rng.integers(0, seconds - length + 1))
        end = start + length
    # Non-event seconds walk through a shuffled cycle of the cases, so each appears in every video
    # that has at least len(CASES) of them.
    cycle = [CASES[i] for i in rng.permutation(len(CASES))]
    plan, background_seconds = [], 0
    for t in range(seconds):
        if start <= t < end:
            second = SecondPlan("event", [event_class], [event_class])
        else:
            case = cycle[background_seconds % len(CASES)]
            background_seconds += 1
            second = _background_second(rng, case, event_class, classes)
        second.distractor = _distractor(rng, second, classes)
        plan.append(second)
    return event_class, (start, end), plan


def _background_second(rng: np.random.Generator, case: str, event_class: int | None, classes: int) -> SecondPlan:
    """A background second of ``case``; in an event video it mostly reuses the event class (hard negatives)."""
    own = event_class if event_class is not None and rng.random() < 0.7 else int(rng.integers(classes))
    if case == "none":
        return SecondPlan(case, [], [])
    if case == "object_only":
        return SecondPlan(case, [own], [])
    if case == "sound_only":
        return SecondPlan(case, [], [own])
    if classes < 2:  # a mismatch needs two classes; fall back to an unpaired object
        return SecondPlan("object_only", [own], [])
    other = (own + 1 + int(rng.integers(classes - 1))) % classes
    return SecondPlan(case, [own], [other]) if rng.random() < 0.5 else SecondPlan(case, [other], [own])


def _distractor(rng: np.random.Generator, second: SecondPlan, classes: int) -> int | None:
    """A silent smaller object of a class that is neither shown nor heard (so it can never form a pair)."""
    free = [k for k in range(classes) if k not in second.visible and k not in second.audible]
    if not free or rng.random() >= DISTRACTOR_PROB:
        return None
    return int(rng.choice(free))


# -- pictures -------------------------------------------------------------------------------------

def _render_video(rng: np.random.Generator, plan: list[SecondPlan], class_list: list[SynthClass],
                  width: int, height: int, fps: int, object_size: float):
    """Frames ``[S*fps, H, W, 3]``, per second the box of the sounding object (``None`` if none),
    and the same per frame.

    A box is ``[x0, y0, x1, y1]`` in pixels, x1/y1 exclusive; a second's box is the union of
    the object's extent over that second's frames.
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    # Muted, slowly drifting diagonal bands: a moving background that never looks like a class colour.
    muted = rng.uniform(70, 130, size=(2, 3)).astype(np.float32)
    angle = rng.uniform(0, np.pi)
    band = (xx * np.cos(angle) + yy * np.sin(angle)) / rng.uniform(40, 80)
    drift = rng.uniform(0.1, 0.3) * rng.choice([-1, 1])
    short = min(width, height)
    main_radius, distractor_radius = object_size * short, DISTRACTOR_SHARE * object_size * short
    main_path = _bouncing_path(rng, main_radius, width, height)
    distractor_path = _bouncing_path(rng, distractor_radius, width, height)

    frames = np.empty((len(plan) * fps, height, width, 3), np.uint8)
    boxes: list[list[int] | None] = [None] * len(plan)
    frame_boxes: list[list[int] | None] = [None] * len(frames)
    for j in range(len(frames)):
        t = j / fps
        second = plan[j // fps]
        weight = (0.5 + 0.5 * np.sin(2 * np.pi * (band + drift * t)))[..., None]
        image = muted[0] * (1 - weight) + muted[1] * weight
        image += rng.normal(0, 6, size=image.shape).astype(np.float32)
        if second.distractor is not None:
            _draw(image, class_list[second.distractor], distractor_path(t), distractor_radius, t, xx, yy)
        for k in second.visible:
            mask = _draw(image, class_list[k], main_path(t), main_radius, t, xx, yy)
            if second.label == k:
                frame_boxes[j] = _mask_box(mask)
                boxes[j // fps] = _union(boxes[j // fps], frame_boxes[j])
        frames[j] = np.clip(image, 0, 255).astype(np.uint8)
    return frames, boxes, frame_boxes


def _bouncing_path(rng: np.random.Generator, radius: float, width: int, height: int):
    """t -> (cx, cy): constant velocity, reflected at the borders so the object stays in frame."""
    low = np.array([radius, radius])
    span = np.maximum(np.array([width, height]) - 2 * radius, 1.0)
    start = rng.uniform(0, 1, 2) * span
    speed = rng.uniform(0.08, 0.2) * min(width, height)
    direction = rng.uniform(0, 2 * np.pi)
    velocity = speed * np.array([np.cos(direction), np.sin(direction)])

    def centre(t: float) -> tuple[float, float]:
        folded = np.mod(start + velocity * t, 2 * span)
        x, y = low + np.where(folded > span, 2 * span - folded, folded)
        return float(x), float(y)
    return centre


def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    if shape == "circle":
        return dx ** 2 + dy ** 2 <= r ** 2
    if shape == "square":
        return np.maximum(abs(dx), abs(dy)) <= 0.85 * r
    if shape == "diamond":
        return abs(dx) + abs(dy) <= 1.15 * r
    if shape == "ring":
        d2 = dx ** 2 + dy ** 2
        return (d2 <= r ** 2) & (d2 >= (0.5 * r) ** 2)
    if shape == "cross":
        inside = np.maximum(abs(dx), abs(dy)) <= r
        return inside & ((abs(dx) <= 0.4 * r) | (abs(dy) <= 0.4 * r))
    if shape == "triangle":  # apex up, base at dy = +r
        return (dy <= r) & (dy >= -r) & (abs(dx) <= (dy + r) * 0.6)
    raise ValueError(shape)


def _draw(image: np.ndarray, cls: SynthClass, centre: tuple[float, float], radius: float, t: float,
          xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """Paint the class object (scrolling stripes of its colour and a darker shade); returns its mask."""
    dx, dy = xx - centre[0], yy - centre[1]
    mask = _shape_mask(cls.shape, dx, dy, radius)
    theta = np.deg2rad(37 * cls.index)
    stripes = np.mod((dx * np.cos(theta) + dy * np.sin(theta)) / (0.25 * radius) + 2 * t, 2.0) < 1.0
    colour = np.asarray(cls.rgb, np.float32)
    image[mask] = np.where(stripes[mask][:, None], colour, 0.7 * colour)
    return mask


def _mask_box(mask: np.ndarray) -> list[int] | None:
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def _union(a: list[int] | None, b: list[int] | None) -> list[int] | None:
    if a is None or b is None:
        return a or b
    return [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]


# -- sounds ----------------------------------------------------------------------------------------

def _render_audio(rng: np.random.Generator, plan: list[SecondPlan], class_list: list[SynthClass],
                  sample_rate: int, channels: int) -> np.ndarray:
    """``[channels, S*sample_rate]``: white noise + a drifting low rumble + each audible class sound."""
    total = len(plan) * sample_rate
    track = rng.normal(0, NOISE_RMS, total)
    rumble = np.cumsum(rng.normal(0, 1, total))
    rumble -= np.convolve(rumble, np.ones(2001) / 2001, mode="same")  # remove the random walk's drift
    track += NOISE_RMS * rumble / (rumble.std() + 1e-9)
    fade = np.minimum(1.0, np.minimum(np.arange(sample_rate), np.arange(sample_rate)[::-1]) / (0.005 * sample_rate))
    for t, second in enumerate(plan):
        for k in second.audible:
            track[t * sample_rate:(t + 1) * sample_rate] += fade * class_sound(class_list[k], sample_rate, rng)
    track = np.clip(track, -1, 1).astype(np.float32)
    return np.stack([track] * channels) if channels > 1 else track[None]


def class_sound(cls: SynthClass, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """One second of the class's sound at RMS ``SOUND_RMS``; the spectrum centres on ``cls.centre_hz``."""
    t = np.arange(sample_rate) / sample_rate
    f = cls.centre_hz
    if cls.pattern == "steady tone":
        wave = np.sin(2 * np.pi * f * t) + 0.5 * np.sin(2 * np.pi * 2 * f * t)
    elif cls.pattern == "rhythm":  # 4 beats a second
        wave = np.sin(2 * np.pi * f * t) * (np.mod(4 * t, 1.0) < 0.5)
    elif cls.pattern == "chirp":  # two upward sweeps a second over +-25% of the centre
        freq = f * 2 ** (0.65 * (np.mod(2 * t, 1.0) - 0.5))
        wave = np.sin(2 * np.pi * np.cumsum(freq) / sample_rate)
    else:  # noise band +-20% around the centre
        spectrum = np.fft.rfft(rng.normal(0, 1, sample_rate))
        hz = np.fft.rfftfreq(sample_rate, 1 / sample_rate)
        spectrum[(hz < f / 1.2) | (hz > f * 1.2)] = 0
        wave = np.fft.irfft(spectrum, sample_rate)
    return SOUND_RMS * wave / (np.sqrt(np.mean(wave ** 2)) + 1e-12)
