"""What avepipe's ``--preset ave`` extraction feeds the networks, for comparison with the references of
benchmarks/_ave_reference.py (shared by tests/test_extract_preset_ave.py and benchmarks/preset_ave_fidelity.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from avepipe.extract.provenance import AVE_RECIPE, ExtractorConfig
from avepipe.extract.stream import AudioPart, FramePart, VideoEnd, video_messages

AVE = ExtractorConfig(visual_preset="ave", **AVE_RECIPE)  # what build_encoders records


def recipe_output(path: Path, config=AVE) -> tuple[list[np.ndarray], np.ndarray | None, VideoEnd]:
    """What the extractor feeds the networks: the 224x224 frame of every target, the audio waveform, the end."""
    pixels: dict[int, np.ndarray] = {}
    targets: dict[int, np.ndarray] = {}
    waveform = end = None
    for message in video_messages(path, 0, config):
        if isinstance(message, AudioPart):
            waveform = message.waveform
        elif isinstance(message, FramePart):
            pixels.update({message.first_ref + row: rgb for row, rgb in enumerate(message.pixels)})
            targets.update({k: pixels[ref] for ref, first, stop in message.uses for k in range(first, stop)})
        elif isinstance(message, VideoEnd):
            end = message
    return [targets[k] for k in range(len(targets))], waveform, end


def mismatches(ours: list[np.ndarray], reference: list[np.ndarray]) -> list[int]:
    assert len(ours) == len(reference)
    return [k for k, (a, b) in enumerate(zip(ours, reference)) if not np.array_equal(a, b)]
