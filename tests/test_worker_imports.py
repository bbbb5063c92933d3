"""Decoder workers are spawned fresh: whatever their module imports, every worker pays for (time and memory)."""
import subprocess
import sys


def test_decoder_worker_module_does_not_load_torch():
    # A spawned worker imports extract.workers; torch there cost each worker seconds and ~300 MB.
    code = "import sys, avepipe.extract.workers; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"
