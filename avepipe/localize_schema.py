"""The documented JSON schema of ``avepipe localize --json`` (JSON Schema, draft 2020-12 subset).

Kept as a Python dict so it ships with the package without package-data
configuration; ``python -m avepipe.localize_schema`` prints it as JSON.
"""
from __future__ import annotations

import json

SCHEMA_ID = "avepipe.localize/1"

SEGMENT = {
    "type": "object",
    "required": ["second", "start", "end", "label", "confidence"],
    "additionalProperties": False,
    "properties": {
        "second": {"type": "integer", "minimum": 0},
        "start": {"type": "number", "minimum": 0},
        "end": {"type": "number", "minimum": 0},
        "label": {"type": "string"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "probabilities": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0,
                                                                    "maximum": 1}},
        # Only with --source-checkpoint, on event seconds: [x, y] of the sound-source map's peak,
        # in pixels of the original frame.
        "source_peak": {"type": "array", "items": {"type": "number", "minimum": 0}, "minItems": 2},
    },
}

INTERVAL = {
    "type": "object",
    "required": ["start", "end", "label", "mean_confidence"],
    "additionalProperties": False,
    "properties": {
        "start": {"type": "number", "minimum": 0},
        "end": {"type": "number", "minimum": 0},
        "label": {"type": "string"},
        "mean_confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
}

VIDEO = {
    "type": "object",
    "required": ["video", "path", "duration", "has_audio", "notes", "segments", "intervals"],
    "additionalProperties": False,
    "properties": {
        "video": {"type": "string"},
        "path": {"type": "string"},
        "duration": {"type": "number", "minimum": 0},
        "has_audio": {"type": "boolean"},
        "notes": {"type": "array", "items": {"type": "string"}},
        "segments": {"type": "array", "items": SEGMENT},
        "intervals": {"type": "array", "items": INTERVAL},
        # Only when explaining: what the network's explain() returns, by name, as nested lists over the
        # video's T seconds: [T, T] second-to-second (null where two seconds never shared a window),
        # [T, h, w] maps over the frame, or [T] / [T, K] per-second values. PSP: gamma_va, gamma_av, attention.
        "explain": {"type": "object", "additionalProperties": {"type": "array", "minItems": 1}},
    },
}

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "avepipe localize output",
    "type": "object",
    "required": ["schema", "checkpoint", "classes", "extractor", "videos", "errors"],
    "additionalProperties": False,
    "properties": {
        "schema": {"const": SCHEMA_ID},
        "checkpoint": {"type": "string"},
        "source_checkpoint": {"type": "string"},
        "classes": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "extractor": {"type": "object"},
        "videos": {"type": "array", "items": VIDEO},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["path", "reason"],
                "additionalProperties": False,
                "properties": {"path": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
    },
}

if __name__ == "__main__":
    print(json.dumps(SCHEMA, indent=2))
