"""avepipe installs as one namespace: users' own ``data``/``models``/``extract`` packages never collide with it."""
from __future__ import annotations

import configparser
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from avepipe.data.cache import CacheWriter
from avepipe.extract.provenance import ExtractorConfig
from avepipe.models import build_model
from avepipe.models.checkpoint import save_checkpoint
from tests._cache_helpers import CONFIG, make_features

REPO = Path(__file__).resolve().parents[1]


def _setup_options() -> tuple[dict[str, str], list[str]]:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    options = config["options"]
    mapping = dict(line.split(" = ") for line in options["package_dir"].strip().splitlines())
    packages = options["packages"].split()
    return mapping, packages


def test_every_package_folder_installs_under_avepipe():
    mapping, packages = _setup_options()
    assert {name.split(".")[0] for name in [*mapping, *packages]} == {"avepipe"}
    on_disk = set()
    for package, folder in mapping.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder).parts
            on_disk.add(".".join([package, *relative]))
    # A folder with an __init__.py that is missing from `packages` would be left out of the wheel.
    assert on_disk == set(packages)


def _user_project(tmp_path: Path) -> Path:
    """A research project's folder with its own top-level packages named like avepipe's folders."""
    project = tmp_path / "my project"
    for name in ("data", "models", "extract"):
        (project / name).mkdir(parents=True)
        (project / name / "__init__.py").write_text(f"WHO = 'user {name}'\n")
    (project / "models" / "mine.py").write_text("VALUE = 42\n")
    return project


def _run(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=project, capture_output=True, text=True, timeout=300)


def test_cache_info_from_a_folder_with_its_own_data_and_models(tmp_path):
    cache = tmp_path / "feats.h5"
    with CacheWriter(cache, CONFIG) as writer:
        writer.write(make_features("clip", segments=2))
    result = _run(_user_project(tmp_path), "-m", "avepipe", "cache", "info", str(cache))
    assert result.returncode == 0, result.stderr
    assert "videos:       1 (2 segments)" in result.stdout


def test_localizer_and_user_packages_import_side_by_side(tmp_path):
    checkpoint = tmp_path / "ckpt"
    torch.manual_seed(0)
    save_checkpoint(checkpoint, build_model("psp", "fully", num_classes=2), ["a", "b", "background"],
                    ExtractorConfig(visual_weights="random:3", audio_weights="random:3"))
    script = textwrap.dedent(f"""
        from avepipe import Localizer
        import data, models, extract
        from models.mine import VALUE
        localizer = Localizer.from_checkpoint({str(checkpoint)!r}, device="cpu")
        print(localizer.class_names, data.WHO, models.WHO, extract.WHO, VALUE)
    """)
    result = _run(_user_project(tmp_path), "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["['a',", "'b',", "'background']", "user", "data", "user", "models",
                                     "user", "extract", "42"]
