"""Training keeps freed memory for the next step: once warmed up, a step's activations come back from the heap
instead of being page-faulted in fresh from the kernel (glibc returns blocks over 32 MB at every free)."""
from __future__ import annotations

import resource
import sys

import pytest
import torch

from avepipe.run.allocator import keep_freed_memory

BLOCK_PAGES = 32768 * 512 * 4 // 4096     # 4 KiB pages of one activation


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_training_steps_after_the_first_take_no_page_faults():
    assert keep_freed_memory()
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(512, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512))
    x = torch.rand(32768, 512)      # 64 MB per activation

    def step_faults() -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        net(x).square().mean().backward()
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    faults = [step_faults() for _ in range(8)]
    # The heap grows for a few steps until the freed blocks fit the new ones; then less than one 64 MB
    # block per step is fresh (without keep_freed_memory: about ten, 164,000 faults per step here).
    assert sum(faults[4:]) < 4 * BLOCK_PAGES, faults
