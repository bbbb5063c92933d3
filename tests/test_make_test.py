"""`make test` on a fresh machine: the browser it needs is installed as root, or it stops with one line."""
from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / ".ci" / "browser"


def _fake_command(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def _run(tmp_path: Path, **commands: str) -> subprocess.CompletedProcess:
    """The script with a PATH of stand-in ``commands`` only (so the machine's own browser is not found)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in commands.items():
        _fake_command(bin_dir, name.replace("_", "-"), body)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    return subprocess.run(["/bin/bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)


def _machine(tmp_path: Path, uid: int) -> subprocess.CompletedProcess:
    """No browser; `id` says ``uid``; `apt-get` logs its arguments."""
    return _run(tmp_path, id=f"echo {uid}", apt_get=f'echo "$@" >> {tmp_path / "apt.log"}')


def test_without_root_it_stops_with_one_line_naming_the_install(tmp_path):
    done = _machine(tmp_path, uid=1000)
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["make test: the browser tests need Chromium; run 'sudo apt-get install "
                                        "chromium' (or set AVEPIPE_CHROMIUM) and try again"]
    assert not (tmp_path / "apt.log").exists()


def test_as_root_it_installs_chromium_with_apt(tmp_path):
    done = _machine(tmp_path, uid=0)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "apt.log").read_text().splitlines() == ["update -qq", "install -y -qq chromium"]


def test_a_browser_already_there_is_used_as_it_is(tmp_path):
    done = _run(tmp_path, id="echo 1000", chromium="exit 0", apt_get=f"touch {tmp_path / 'apt.log'}")
    assert done.returncode == 0 and done.stderr == ""
    assert not (tmp_path / "apt.log").exists()


def test_ci_runs_the_readme_test_command_only():
    readme = (REPO / "README.md").read_text()
    assert "make test   # the full test suite" in readme
    commands = [line for line in (REPO / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))]
    assert commands == ["make test"]
