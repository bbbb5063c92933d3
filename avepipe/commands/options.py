"""Option types that several commands share, defined once."""
from __future__ import annotations

from pathlib import Path

import click

from avepipe.data.ave_metadata import BUNDLED, resolve_annotations, resolve_splits_dir


class _MetadataPath(click.Path):
    """A path, or the name ``ave`` for the official AVE metadata shipped with avepipe."""

    def __init__(self, resolve, **kwargs):
        super().__init__(path_type=Path, **kwargs)
        self._resolve = resolve

    def convert(self, value, param, ctx):
        if str(value) == BUNDLED:
            return self._resolve(value)
        return super().convert(value, param, ctx)


ANNOTATIONS = _MetadataPath(resolve_annotations, dir_okay=False)
SPLITS = _MetadataPath(resolve_splits_dir, file_okay=False)
