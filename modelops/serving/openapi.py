"""The OpenAPI document of the serving routes, shipped in the package as openapi.yaml.

Read once at start-up and served as YAML and as JSON. File I/O only (package data).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

RESOURCE = "openapi.yaml"


@dataclass(frozen=True)
class OpenApiDocument:
    yaml_text: str
    json_text: str

    @classmethod
    @cache
    def load(cls) -> OpenApiDocument:
        text = resources.files("modelops.serving").joinpath(RESOURCE).read_text(encoding="utf-8")
        return cls(yaml_text=text, json_text=json.dumps(yaml.safe_load(text)))
