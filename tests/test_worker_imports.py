"""Decoder workers are spawned fresh: whatever their module imports, every worker pays for (time and memory)."""
import subprocess
import sys

import pytest


@pytest.mark.parametrize("package", ["torch", "scipy", "librosa"])
def test_decoder_worker_module_does_not_load_heavy_packages(package):
    # A spawned worker imports extract.workers. torch there cost each worker seconds and ~300 MB;
    # scipy.signal and librosa (VGGish's log-mel, reached through one constant) 1.9 s per worker.
    code = (f"import sys, avepipe.extract.workers; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] == {package!r}))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"
