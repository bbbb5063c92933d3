"""``avepipe import-checkpoint``: turn the PSP authors' released .pth into an avepipe checkpoint."""
from __future__ import annotations

from pathlib import Path

import click

from avepipe.commands.base import Command
from avepipe.errors import UserError

# The 28 AVE event classes in order of first appearance in Annotations.txt (the authors'
# class indices); tests check this list against ../shared/ave/Annotations.txt.
AVE_CLASSES = [
    "Church bell", "Male speech, man speaking", "Bark", "Fixed-wing aircraft, airplane",
    "Race car, auto racing", "Female speech, woman speaking", "Helicopter", "Violin, fiddle",
    "Flute", "Ukulele", "Frying (food)", "Truck", "Shofar", "Motorcycle", "Acoustic guitar",
    "Train horn", "Clock", "Banjo", "Goat", "Baby cry, infant cry", "Bus", "Chainsaw", "Cat",
    "Horse", "Toilet flush", "Rodents, rats, mice", "Accordion", "Mandolin",
]
BACKGROUND = "background"


def read_class_file(path: Path) -> list[str]:
    """Event class names, one per line (blank lines ignored); 'background' appended unless last."""
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read class names ({exc})") from None
    if names and names[-1] == BACKGROUND:
        names = names[:-1]
    if len(names) != len(AVE_CLASSES):
        raise UserError(f"{path}: {len(names)} event classes, but the released models have {len(AVE_CLASSES)}")
    return names + [BACKGROUND]


@click.command("import-checkpoint", cls=Command)
@click.argument("state_dict", type=click.Path(path_type=Path))
@click.option("--setting", type=click.Choice(["fully", "weakly"]), required=True,
              help="Which released model the file holds: fully or weakly supervised PSP.")
@click.option("-o", "--output", "output", type=click.Path(path_type=Path), required=True,
              help="Checkpoint directory to write (model.safetensors + config.json).")
@click.option("--classes", "classes_file", type=click.Path(path_type=Path), default=None,
              help="Text file with the 28 event class names, one per line, in the model's index order "
                   "(default: the AVE classes in Annotations.txt order).")
def import_checkpoint(state_dict: Path, setting: str, output: Path, classes_file: Path | None) -> None:
    """Convert the PSP authors' released STATE_DICT (.pth) into an avepipe checkpoint.

    The file is read with torch.load(weights_only=True) (no code is executed); layers the
    released file has but the model does not use are ignored. The checkpoint records the
    released AVE features as its extractor, since the authors trained on them.
    """
    from avepipe.extract.provenance import AVE_RELEASED
    from avepipe.models.checkpoint import import_authors_state_dict, save_checkpoint

    class_names = read_class_file(classes_file) if classes_file else AVE_CLASSES + [BACKGROUND]
    model = import_authors_state_dict(state_dict, setting)
    save_checkpoint(output, model, class_names, AVE_RELEASED,
                    extra={"imported_from": state_dict.name, "source": "PSP authors' released weights"})
    click.echo(f"wrote {output} ({setting} PSP, tau={model.tau}, {len(class_names)} classes)")
