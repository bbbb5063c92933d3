"""Raw videos in, their audio-visual events out (``avepipe localize``): find the videos, localise
each one, hand every result to the writers the options ask for (``localize_writers``)."""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from tqdm import tqdm

from avepipe.data.annotations import Annotations, load_annotations
from avepipe.errors import UserError
from avepipe.extract.cpu_advice import bf16_note
from avepipe.extract.folder import VIDEO_EXTENSIONS, discover_videos, split_duplicate_ids
from avepipe.extract.stream import failure_reason
from avepipe.localize_options import THUMBNAIL_SIZE, LocalizeOptions
from avepipe.localize_writers import LocalizedVideo, LocalizeRun, get_writers
from avepipe.localizer import Localizer

RANDOM_NOTE = "note: this checkpoint's extractor uses random backbones: a smoke test, not real features"
BF16_ADVICE = "a model trained on features extracted with --precision bf16 would localise faster"


def _echo(message: str, err: bool = False) -> None:
    print(message, file=sys.stderr if err else sys.stdout)


def list_videos(arguments: Iterable[str | Path]) -> tuple[list[Path], list[dict]]:
    """Video files named directly or found in folders (as `avepipe extract` finds them, one per video id),
    and ``{"path", "reason"}`` of what cannot be localised (missing paths, duplicate ids)."""
    found, errors = [], []
    for argument in map(Path, arguments):
        if argument.is_dir():
            found += discover_videos(argument, VIDEO_EXTENSIONS)
        elif argument.exists():
            found.append(argument)
        else:
            errors.append({"path": str(argument), "reason": "no such file or folder"})
    unique, duplicates = split_duplicate_ids(found)
    errors += [{"path": str(path), "reason": reason} for path, reason in duplicates]
    return list(unique.values()), errors


def truth_labels(annotations: Annotations | None, video_id: str, length: int) -> list[str] | None:
    if annotations is None or video_id not in annotations:
        return None
    return [annotations.classes[i] for i in annotations.segment_labels(video_id, length)]


def localize_videos(videos: Iterable[str | Path], options: LocalizeOptions,
                    echo: Callable[..., None] = _echo) -> bool:
    """Localise every video of ``videos`` (files or folders) and write what ``options`` asks for; the
    table goes through ``echo``. True when every video succeeded (a bad file is reported and skipped)."""
    videos = list(videos)
    paths, errors = list_videos(videos)
    if not paths and not errors:
        raise UserError(f"no video files in {', '.join(map(str, videos))}")
    localizer = Localizer.from_checkpoint(options.checkpoint, device=options.device,
                                          vgg_weights=options.vgg_weights, vggish_weights=options.vggish_weights,
                                          source_checkpoint=options.source_checkpoint)
    annotations = (load_annotations(options.annotations, classes=localizer.class_names)
                   if options.annotations else None)
    if localizer.extractor.is_random:
        echo(RANDOM_NOTE)
    extractor = localizer.extractor
    note = bf16_note(localizer.device, extractor.visual_precision, extractor.visual_preset, advice=BF16_ADVICE)
    if note:
        echo(note, err=True)
    many = len(paths) > 1
    # Several videos: text goes through tqdm so it does not break the progress bar.
    say = (lambda text, err=False: tqdm.write(text, file=sys.stderr if err else sys.stdout)) if many else echo
    run = LocalizeRun(options, localizer.class_names, localizer.extractor, many, say, errors)
    writers = get_writers(run)
    for path in tqdm(paths, desc="localize", unit="video", file=sys.stderr, disable=not many):
        video = _localize_one(localizer, path, options, annotations, run)
        if video is None:
            continue
        for writer in writers:
            writer.add(video)
        video.result.thumbnails = None  # pictures are written; do not hold frames of every video
    run.echo = echo   # the progress bar is gone: the summaries go straight out
    for writer in writers:
        writer.close()
    return not run.errors


def _localize_one(localizer: Localizer, path: Path, options: LocalizeOptions, annotations: Annotations | None,
                  run: LocalizeRun) -> LocalizedVideo | None:
    """One video's result and truth, or None with its failure recorded (one bad file must not stop the rest)."""
    size = options.thumbnail_size
    try:
        result = localizer.localize(path, explain=options.explain_dir is not None, thumbnails=size is not None,
                                    thumbnail_size=size or THUMBNAIL_SIZE)
    except Exception as exc:  # as in `avepipe extract`: reported, skipped
        reason = failure_reason(exc)
        run.errors.append({"path": str(path), "reason": reason})
        run.echo(f"skipped {path}: {reason}", err=True)
        return None
    return LocalizedVideo(str(path), result, truth_labels(annotations, result.video, len(result.segments)))
