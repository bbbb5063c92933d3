"""The one line a GPU user sees at the start of an fp32 extraction: the fast setting and its price.

fp32 stays the default (exact features; ``--preset ave`` exists to reproduce released
ones). The line names the faster setting, the drift it costs (as measured, on CPU) and
a batch size estimated from the GPU's memory. Its speed-up was never measured by this
project, which has no GPU: ``avepipe doctor`` measures it on the user's machine.
"""
from __future__ import annotations

import torch

# extract_throughput.py --drift-frames 4, docs/benchmarks.md#throughput-and-bf16-drift (CPU, random VGG-19).
BF16_DRIFT = "cosine >= 0.99997, max relative error 0.012"
# Estimated, not measured: VGG-19 pool5 inference on 224x224 frames in bf16 keeps about 25 MB of
# activations per frame alive at its peak (two 64x224x224 maps plus workspace); a quarter of the
# GPU's memory is given to them, leaving the rest to cuDNN workspaces and the other process.
BYTES_PER_FRAME_BF16 = 25 * 2 ** 20
MIN_BATCH, MAX_BATCH = 32, 256


def fast_batch_size(total_memory: int) -> int:
    """The largest power of two of frames whose bf16 activations fit a quarter of ``total_memory`` (32..256)."""
    fits = total_memory // 4 // BYTES_PER_FRAME_BF16
    batch = MIN_BATCH
    while batch * 2 <= min(fits, MAX_BATCH):
        batch *= 2
    return batch


def fast_setting_line(device: torch.device) -> str:
    """``note: ...`` for an fp32 extraction on GPU ``device``."""
    properties = torch.cuda.get_device_properties(device)
    memory = properties.total_memory / 2 ** 30
    return (f"note: {device} ({properties.name}, {memory:.0f} GiB) extracts in exact fp32; "
            f"--precision bf16 --batch-size {fast_batch_size(properties.total_memory)} is the fast setting "
            f"(features drift {BF16_DRIFT}, measured on CPU; its speed-up here is unmeasured by the "
            "project: `avepipe doctor` measures it)")
