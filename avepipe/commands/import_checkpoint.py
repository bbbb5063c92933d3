"""``avepipe import-checkpoint``: turn a model's authors' .pth state-dict into an avepipe checkpoint."""
from __future__ import annotations

from pathlib import Path

import click

from avepipe.data.annotations import BACKGROUND
from avepipe.commands.base import Command
from avepipe.commands.options import model_option
from avepipe.errors import UserError


def ave_classes() -> list[str]:
    """The 28 AVE event classes in the authors' index order: first appearance in the bundled Annotations.txt."""
    from avepipe.data.annotations import load_annotations
    from avepipe.data.ave_metadata import AVE_ANNOTATIONS

    return load_annotations(AVE_ANNOTATIONS).event_classes


def read_class_file(path: Path) -> list[str]:
    """Event class names, one per line (blank lines ignored); 'background' appended unless last."""
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read class names ({exc})") from None
    if names and names[-1] == BACKGROUND:
        names = names[:-1]
    if not names:
        raise UserError(f"{path}: no class names")
    return names + [BACKGROUND]


@click.command("import-checkpoint", cls=Command)
@click.argument("state_dict", type=click.Path(path_type=Path))
@click.option("--setting", type=click.Choice(["fully", "weakly"]), required=True,
              help="Which released model the file holds: fully or weakly supervised.")
@model_option(" Which authors' files: psp the PSP authors' CVPR 2021 files, cpsp the CPSP authors' CPSP files "
              "(recorded as trained with --cpsp-loss released); docs/models.md lists every model's source.")
@click.option("-o", "--output", "output", type=click.Path(path_type=Path), required=True,
              help="Checkpoint directory to write (model.safetensors + config.json).")
@click.option("--classes", "classes_file", type=click.Path(path_type=Path), default=None,
              help="Text file with the event class names, one per line, in the model's index order "
                   "(default: the AVE classes in Annotations.txt order).")
def import_checkpoint(state_dict: Path, setting: str, model: str, output: Path,
                      classes_file: Path | None) -> None:
    """Convert a model's authors' STATE_DICT (.pth, as their scripts save it) into an avepipe checkpoint.

    The file is read with torch.load(weights_only=True) (no code is executed); layers the
    released file has but the model does not use are ignored. The checkpoint records the
    released AVE features as its extractor, since the authors trained on them.
    """
    from avepipe.extract.provenance import AVE_RELEASED
    from avepipe.models.checkpoint import import_authors_state_dict, save_checkpoint

    class_names = read_class_file(classes_file) if classes_file else ave_classes() + [BACKGROUND]
    net = import_authors_state_dict(state_dict, setting, model, num_classes=len(class_names) - 1)
    save_checkpoint(output, net, class_names, AVE_RELEASED,
                    extra={"imported_from": state_dict.name, "source": f"{model.upper()} authors' released weights"})
    options = "".join(f", {name}={value}" for name, value in net.options().items())
    click.echo(f"wrote {output} ({setting} {model.upper()}{options}, {len(class_names)} classes)")
