"""``--audio-backend tfhub``: the official TensorFlow-Hub VGGish (``google/vggish/1``).

Optional (extra ``tfhub``): TensorFlow is large, and the torch backend gives the
same network. This backend exists to match the released AVE audio features,
which came from the official TensorFlow model.
"""
from __future__ import annotations

import numpy as np

from avepipe.errors import UserError
from avepipe.extract.features import AUDIO_SHAPE
from avepipe.extract.logmel import SAMPLE_RATE, segment_waveform
from avepipe.extract.weights import RANDOM_HINT, short_reason

TFHUB_VGGISH_HANDLE = "https://tfhub.dev/google/vggish/1"
TFHUB_VGGISH_ID = "tfhub:google/vggish/1"


class TfHubVGGishEncoder:
    """Same interface as the torch ``AudioEncoder``: ``encode(waveform_16k, segments) -> [T, 128]``."""

    identity = TFHUB_VGGISH_ID

    def __init__(self, handle: str = TFHUB_VGGISH_HANDLE, device=None) -> None:
        self.handle = handle
        self._model = _load_model(handle, device)

    def encode(self, waveform_16k: np.ndarray, segments: int, hop: int = SAMPLE_RATE) -> np.ndarray:
        """Feed the second from each ``hop * t`` (float32 in [-1, 1]) to the model: it makes one 0.96 s example of it."""
        chunks = segment_waveform(waveform_16k, segments, hop).astype(np.float32)
        embeddings = [np.asarray(self._model(chunk), dtype=np.float32)[:1] for chunk in chunks]
        return np.concatenate(embeddings, axis=0) if embeddings else np.zeros((0, *AUDIO_SHAPE), np.float32)


def share_gpus(tf, device) -> None:
    """Give TensorFlow this process's torch device only, and let its memory grow as needed.

    By default TensorFlow reserves nearly all memory of every visible GPU, in every rank:
    eight ranks would each take all eight GPUs. It now sees the GPU this process extracts
    on (``device``, a ``torch.device``), or none when that is the CPU. Too late once
    TensorFlow has started its GPUs (RuntimeError): it is then left as it is.
    """
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return
    index = (device.index or 0) if device is not None and device.type == "cuda" else len(gpus)
    mine = gpus[index:index + 1]    # none for the CPU (or a GPU TensorFlow does not see: it computes on the CPU)
    try:
        tf.config.set_visible_devices(mine, "GPU")
        for gpu in mine:
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:
        pass


def _load_model(handle: str, device=None):
    try:
        import tensorflow as tf
        import tensorflow_hub as hub  # optional extra: imported only when this backend is chosen
    except ImportError as exc:
        raise UserError(
            "--audio-backend tfhub needs the optional 'tfhub' extra (tensorflow, tensorflow-hub): "
            "pip install 'avepipe[tfhub]', or use --audio-backend torch"
        ) from exc
    share_gpus(tf, device)
    try:
        return hub.load(handle)
    except Exception as exc:
        raise UserError(
            f"TF-Hub model {handle} could not be loaded ({short_reason(exc)}): when offline, put the "
            f"downloaded model in the TF-Hub cache folder (TFHUB_CACHE_DIR), or use --audio-backend torch, "
            f"{RANDOM_HINT}"
        ) from exc
