"""YAML as the plan writes it: block style, multi-line strings as literal blocks, keys in given order.

libyaml's emitter when PyYAML has it: a large fleet's plan is megabytes of YAML. PyYAML's representer
and resolver stay in Python either way; the two steps that run for every scalar take a shorter road to
the same nodes and tags (tests/platform/test_yaml_text.py compares them with PyYAML's own).
"""

from __future__ import annotations

from typing import Any

import yaml

_BaseDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
# libyaml's safe loader and dumper when PyYAML has them (the same data, nodes and marks, much faster).
FAST_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
FAST_DUMPER = _BaseDumper
STR_TAG = "tag:yaml.org,2002:str"


class _Dumper(_BaseDumper):  # type: ignore[valid-type, misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._scalar_tags: dict[tuple[str, tuple[bool, bool]], str] = {}

    def represent_data(self, data: Any) -> yaml.Node:
        if type(data) is str and self.default_style is None:  # as represent_data, through _str_presenter
            return yaml.ScalarNode(STR_TAG, data, style="|" if "\n" in data else None)
        return super().represent_data(data)

    def resolve(self, kind: type, value: Any, implicit: Any) -> str:
        """A scalar's implicit tag depends on its text alone (this dumper has no path resolvers): the
        emitter asks twice for every scalar, and a fleet's manifests repeat the same keys and values."""
        if kind is not yaml.ScalarNode or self.yaml_path_resolvers:
            return super().resolve(kind, value, implicit)  # type: ignore[no-any-return]
        key = (value, implicit)
        tag = self._scalar_tags.get(key)
        if tag is None:
            tag = self._scalar_tags[key] = super().resolve(kind, value, implicit)
        return tag  # type: ignore[no-any-return]


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar(STR_TAG, data, style=style)


_Dumper.add_representer(str, _str_presenter)


def to_yaml(document: Any) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)
