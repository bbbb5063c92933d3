"""Option types that several commands share, defined once."""
from __future__ import annotations

from pathlib import Path

import click

from avepipe.data.ave_metadata import BUNDLED, resolve_annotations, resolve_splits_dir
from avepipe.data.vggsound import PREFIX, VGGSoundFiles
from avepipe.errors import UserError


class _MetadataPath(click.Path):
    """A path, or the name ``ave`` for the official AVE metadata shipped with avepipe."""

    def __init__(self, resolve, **kwargs):
        super().__init__(path_type=Path, **kwargs)
        self._resolve = resolve

    def convert(self, value, param, ctx):
        if str(value) == BUNDLED:
            return self._resolve(value)
        return super().convert(value, param, ctx)


class _AnnotationsPath(_MetadataPath):
    """Also ``vggsound:META.csv,CATEGORIES.txt,LABELS_DIR`` (the VGGSound-AVEL files, data/vggsound.py)."""

    def convert(self, value, param, ctx):
        if isinstance(value, VGGSoundFiles):
            return value
        if str(value).startswith(PREFIX):
            try:
                return VGGSoundFiles.parse(str(value))
            except UserError as err:
                self.fail(str(err), param, ctx)
        return super().convert(value, param, ctx)


ANNOTATIONS = _AnnotationsPath(resolve_annotations, dir_okay=False)
SPLITS = _MetadataPath(resolve_splits_dir, file_okay=False)
