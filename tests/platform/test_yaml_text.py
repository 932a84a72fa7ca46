"""The plan's YAML writer takes shortcuts through PyYAML's representer and resolver: its output must be
PyYAML's own, byte for byte."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from components import yaml_text
from roadbike.artifacts import all_artifacts
from tests.helpers import parse, run_raw, stack_raw


class _Stock(yaml_text._BaseDumper):  # type: ignore[name-defined, misc]
    """PyYAML's dumper with only the plan's str presenter: the reference."""


_Stock.add_representer(str, yaml_text._str_presenter)


def _stock(document: Any) -> str:
    return yaml.dump(document, Dumper=_Stock, sort_keys=False, default_flow_style=False, width=120)


SHARED = ["a", "b"]
AWKWARD = {
    "looks like other types": [
        "true",
        "False",
        "yes",
        "off",
        "null",
        "~",
        "",
        "1",
        "0x1f",
        "1e3",
        "1.5",
        ".inf",
    ],
    "needs quoting": [": x", "- x", "#x", "x #y", "'", '"', "{a}", "[a]", "@x", "`x", "*x", "&x", "!x", "%x"],
    "multi-line": ["a\nb", "a\nb\n", " leading\n", "trailing \n", "tab\there\n", "unicode é ☃\n"],
    "numbers and the rest": [0, -1, 10**20, 1.0, 1e-7, float("inf"), None, True, False],
    "shared lists are aliased": {"first": SHARED, "second": SHARED},
    "keys": {"true": 1, "1": 2, "": 3, "a b": 4, "é": 5},
}


def test_awkward_values_are_written_as_pyyaml_writes_them() -> None:
    assert yaml_text.to_yaml(AWKWARD) == _stock(AWKWARD)
    assert "&id001" in _stock(AWKWARD), "the shared list should be aliased, or aliasing is not compared"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_yaml_artifact_is_written_as_pyyaml_writes_it(stack: str) -> None:
    raw = stack_raw(stack)
    files = all_artifacts(run_raw(raw), parse(raw))
    documents = [
        yaml.safe_load(text) for path, text in sorted(files.items()) if path.endswith((".yaml", ".yml"))
    ]
    assert len(documents) > 20
    for document in documents:
        assert yaml_text.to_yaml(document) == _stock(document)
