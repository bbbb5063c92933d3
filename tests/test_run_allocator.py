"""Training keeps freed memory for the next step: once warmed up, a step's activations come back from the heap
instead of being page-faulted in fresh from the kernel (glibc returns blocks over 32 MB at every free).

Each case runs in a fresh interpreter, as ``avepipe train`` does: the test process's heap, after hundreds
of other tests, is no picture of a training process's (and the allocator setting would outlive the test).
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

BLOCK_PAGES = 32768 * 512 * 4 // 4096     # 4 KiB pages of one activation

STEPS = """
import json, resource, sys
import torch
from avepipe.run.allocator import keep_freed_memory

kept = keep_freed_memory() if sys.argv[1] == "keep" else False
torch.manual_seed(0)
scale, shift = torch.ones(512, requires_grad=True), torch.zeros(512, requires_grad=True)
x = torch.rand(32768, 512)      # 64 MB per activation; elementwise layers: the allocations of a step, cheaply

def step_faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    ((x * scale + shift).relu() * scale).square().mean().backward()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

print(json.dumps({"kept": kept, "faults": [step_faults() for _ in range(6)]}))
"""


def _faults(mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True, check=True,
                          env={"OMP_NUM_THREADS": "1", "PATH": ""})
    return json.loads(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_training_steps_after_the_first_take_no_page_faults():
    kept, plain = _faults("keep"), _faults("plain")
    assert kept["kept"] and not plain["kept"]
    # The heap grows for a few steps until the freed blocks fit the new ones; from then on most of a step's
    # blocks come back from it (measured: 0-5 fresh 64 MB blocks a step, against 13 with glibc's defaults,
    # which hands every block back to the kernel at each free).
    assert sum(plain["faults"][3:]) > 3 * 8 * BLOCK_PAGES, plain
    assert sum(kept["faults"][3:]) < sum(plain["faults"][3:]) / 3, (kept, plain)
