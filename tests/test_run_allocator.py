"""Training keeps freed memory for the next step: once warmed up, a step's activations come back from the heap
instead of being page-faulted in fresh from the kernel (glibc returns blocks over 32 MB at every free)."""
from __future__ import annotations

import resource
import sys

import pytest
import torch

from avepipe.run.allocator import keep_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_training_steps_after_the_first_take_no_page_faults():
    assert keep_freed_memory()
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(512, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512))
    x = torch.rand(32768, 512)      # 64 MB per activation: each would be 16,384 fresh 4 KiB pages

    def step_faults() -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        net(x).square().mean().backward()
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    faults = [step_faults() for _ in range(4)]
    assert max(faults[2:]) < 1_000, faults     # without keep_freed_memory about 164,000 per step here
