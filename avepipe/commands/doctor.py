"""`avepipe doctor`: the devices, CPU and engines of this machine, and a cross-device feature check."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from avepipe.commands.base import Command


def _tests_folder() -> Path | None:
    """The project's tests/ beside the package: present in a checkout (editable install), not in a wheel."""
    import avepipe

    folder = Path(avepipe.__file__).resolve().parents[1] / "tests"
    return folder if (folder / "conftest.py").is_file() else None


@click.command(cls=Command)
@click.option("--seconds", type=click.IntRange(min=1), default=2, show_default=True,
              help="Length of the generated clip extracted on every device.")
@click.option("--fps", type=click.IntRange(min=1), default=4, show_default=True,
              help="Frames per second sampled from it (more frames: steadier frames/s, longer on a CPU).")
@click.option("--run-tests", is_flag=True,
              help="Also run the project's `cuda` tests (pytest -m cuda; needs a checkout with tests/).")
def doctor(seconds: int, fps: int, run_tests: bool) -> None:
    """Check this machine: list its devices, CPU flags and engines; extract a generated clip with seeded
    random backbones on the CPU and on every visible GPU (under torchrun: each rank on its own GPU) and
    compare the features (cosine, max relative error, decoded frames byte for byte); report frames/s.

    Exit status 1 when a device's features disagree with the CPU's beyond the tolerance of
    docs/scaling.md, when ranks share a GPU, or when the `cuda` tests fail; 0 otherwise.
    What could not be checked on this machine is listed at the end.
    """
    import torch

    from avepipe.distributed import env_ranks
    from avepipe.doctor import diagnose

    ranks = env_ranks()
    prefix = f"rank {ranks.rank}: " if ranks.distributed else ""
    report = diagnose(seconds, fps, log=lambda line: click.echo(prefix + line))
    ok = report.ok
    if run_tests:
        folder = _tests_folder()
        if folder is None:
            report.not_checked.append("the `cuda` tests (no tests/ beside the package: run pytest -m cuda "
                                      "in a checkout)")
        elif not torch.cuda.is_available():
            report.not_checked.append("the `cuda` tests (no GPU to run them on)")
        elif ranks.is_main:
            tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", str(folder)],
                                   cwd=folder.parent)
            click.echo(prefix + f"cuda tests: {'ok' if tests.returncode == 0 else 'FAIL'} "
                                f"(pytest exit status {tests.returncode})")
            ok &= tests.returncode == 0
    else:
        report.not_checked.append("the `cuda` tests (give --run-tests)")
    for item in report.not_checked:
        click.echo(prefix + f"not checked: {item}")
    click.echo(prefix + ("result: ok" if ok else "result: FAIL (features or devices disagree: see above)"))
    sys.exit(0 if ok else 1)
