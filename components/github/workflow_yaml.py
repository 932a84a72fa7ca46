"""Workflow YAML as GitHub, zizmor and reviewers read it: block style, keys in the given order, and
end-of-line comments (the version beside each pinned SHA, the reason beside each write permission),
which a generic YAML dumper cannot place.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import yaml


@dataclass(frozen=True)
class Commented:
    """A scalar written with an end-of-line comment, e.g. a pinned SHA and its tag."""

    value: str | int | bool
    comment: str


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def to_yaml(document: Mapping[str, Any], header: str = "") -> str:
    lines: list[str] = header.splitlines()
    _mapping(document, 0, lines)
    return "\n".join(lines) + "\n"


def _key(key: str) -> str:
    return key if _PLAIN_KEY.fullmatch(key) else json.dumps(key)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return str(value)
    return _string(str(value))


@lru_cache(maxsize=8192)
def _string(value: str) -> str:
    """The string as YAML writes it: plain where that reads back as the same string, else quoted."""
    dumped = yaml.safe_dump(value, default_flow_style=True, width=10**9, allow_unicode=True)
    return dumped.removesuffix("\n").removesuffix("\n...")


def _mapping(mapping: Mapping[str, Any], indent: int, lines: list[str]) -> None:
    for key, value in mapping.items():
        _value(" " * indent + _key(key) + ":", value, indent, lines)


def _value(prefix: str, value: Any, indent: int, lines: list[str]) -> None:
    """`prefix` is `<indent>key:` or `<indent>-`; nested blocks go two columns deeper than `indent`."""
    if isinstance(value, Commented):
        lines.append(f"{prefix} {_scalar(value.value)} # {value.comment}")
    elif isinstance(value, Mapping):
        if not value:
            lines.append(prefix + " {}")
        else:
            lines.append(prefix)
            _mapping(value, indent + 2, lines)
    elif isinstance(value, (list, tuple)):
        if not value:
            lines.append(prefix + " []")
        else:
            lines.append(prefix)
            for item in value:
                _item(item, indent + 2, lines)
    elif isinstance(value, str) and "\n" in value:
        if not value.endswith("\n") or value.endswith("\n\n") or value[:1].isspace():
            raise ValueError(f"a block scalar must end with exactly one newline: {value!r}")
        lines.append(prefix + " |")
        lines.extend(" " * (indent + 2) + line if line else "" for line in value[:-1].split("\n"))
    else:
        lines.append(f"{prefix} {_scalar(value)}")


def _item(item: Any, indent: int, lines: list[str]) -> None:
    if isinstance(item, Mapping) and item:
        for position, (key, value) in enumerate(item.items()):
            lead = "- " if position == 0 else "  "
            _value(" " * indent + lead + _key(key) + ":", value, indent + 2, lines)
    else:
        _value(" " * indent + "-", item, indent, lines)


def plain(document: Any) -> Any:
    """The document as YAML would load it: `Commented` values become their scalars."""
    if isinstance(document, Commented):
        return document.value
    if isinstance(document, Mapping):
        return {k: plain(v) for k, v in document.items()}
    if isinstance(document, (list, tuple)):
        return [plain(v) for v in document]
    return document
