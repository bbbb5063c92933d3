"""One small frame per second, taken from the extraction's own frames (a ``tap`` of ``extract_video``).

Pictures of a localised video (timeline thumbnails, explain maps, sound-source heatmaps) need
the frame shown at the middle of each second; decoding the video again for them would double
the decoding time. The tap keeps the frame of target ``t * fps + fps // 2`` of each second
(time t + 0.5 for an even fps), shrunk to ``size``: memory is the thumbnails plus the last
``DEDUP_WINDOW`` distinct frames, which later parts may refer to again.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
from PIL import Image

from avepipe.extract.stream import DEDUP_WINDOW, FramePart, Message, VideoEnd


class SecondThumbnails:
    """Call with each message of one video; then ``thumbnails(T)`` and ``display_size``.

    ``size`` None keeps no frames (only the display size is wanted).
    """

    def __init__(self, fps: int, size: int | None) -> None:
        self.fps, self.size = fps, size
        self.recent: OrderedDict[int, np.ndarray] = OrderedDict()   # ref -> pixels
        self.frames: dict[int, np.ndarray] = {}                      # second -> thumbnail
        self.display_size: tuple[int, int] | None = None             # (width, height) as shown

    def __call__(self, message: Message) -> None:
        if isinstance(message, VideoEnd):
            self.display_size = message.display_size
        if not isinstance(message, FramePart) or self.size is None:
            return
        for row, pixels in enumerate(message.pixels):
            self.recent[message.first_ref + row] = pixels
            if len(self.recent) > DEDUP_WINDOW:
                self.recent.popitem(last=False)
        middle = self.fps // 2
        for ref, first, stop in message.uses:
            for second in range(-(-(first - middle) // self.fps), (stop - 1 - middle) // self.fps + 1):
                self.frames[second] = self._shrunk(self.recent[ref])

    def _shrunk(self, pixels: np.ndarray) -> np.ndarray:
        if pixels.shape[:2] == (self.size, self.size):
            return pixels.copy()
        return np.asarray(Image.fromarray(pixels).resize((self.size, self.size), Image.BILINEAR))

    def thumbnails(self, segments: int) -> np.ndarray:
        """``[segments, size, size, 3]`` uint8; a second no frame was shown at stays black."""
        out = np.zeros((segments, self.size, self.size, 3), np.uint8)
        for second, frame in self.frames.items():
            if second < segments:
                out[second] = frame
        return out
