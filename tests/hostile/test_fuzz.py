"""Property-based fuzzing (hypothesis, fixed seed, bounded) of the stack loader, the config model and the
program: mutants of the committed stacks never raise anything but a refusal with a key path."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from components.config import PROJECT, ConfigError, parse_stack_config
from roadbike.stackfile import read_stack_file
from tests.helpers import REPO, STACKS, run_raw

SOURCE = "stacks/Pulumi.fuzz.yaml"
# libyaml's emitter when PyYAML has it: writing the mutant is not what is tested, reading it back is.
DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
# Every refusal names the file and a key path (or, for the file itself, what is wrong with it).
REFUSAL = re.compile(rf"^{re.escape(SOURCE)}: (roadbike:[^\n]*?: .+|.+\(line \d+, column \d+\))$", re.S)
DOCUMENTS = {
    stack: yaml.safe_load((REPO / "stacks" / f"Pulumi.{stack}.yaml").read_text()) for stack in STACKS
}

HOSTILE_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\n",
        "x\n",
        "\x00",
        "\u202e",
        "\u2028",
        "../../etc",
        "a/b",
        "{{ $labels.x }}",
        "${{ secrets.X }}",
        "$(id)",
        "'; rm -rf /; '",
        '"',
        "\\",
        "1.\u0664.2",
        "\u0661\u0662",
        "ghp_" + "a" * 36,
        "AKIA" + "B" * 16,
        "https://u:p@h.example/",
        "http://127.0.0.1/",
        "https://169.254.169.254/",
        'x{job=~".+"}',
        'x{code=~"(a+)+"}',
        'x{code=~"a{2000000000}"}',
        "@every 1ms",
        "* * * * * *",
        "kube-system",
        "system:authenticated",
        "docker.io",
        "DEV",
        "Go-Http-Server",
        "x" * 5000,
        "1e30",
        "true",
        "null",
        "2024-01-01",
        "-1",
        "0",
        "9" * 40,
        "v1.2.3",
        "1.2.3\n",
        "\t",
        "a:b",
        "a b",
    ]
)
SCALARS = st.one_of(
    HOSTILE_TEXT,
    st.text(max_size=40),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(HOSTILE_TEXT, st.text(max_size=8)), children, max_size=4),
    ),
    max_leaves=12,
)


def _containers(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path] if isinstance(node, (dict, list)) else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _containers(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _containers(value, (*path, index))
    return found


def _at(node: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        node = node[step]
    return node


@st.composite
def mutants(draw: st.DrawFn) -> dict[str, Any]:
    """A committed stack with 1 to 4 mutations: a value replaced, a key removed, renamed or added, a list
    item duplicated."""
    document = copy.deepcopy(DOCUMENTS[draw(st.sampled_from(STACKS))])
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        containers = _containers(document["config"])
        path = draw(st.sampled_from(containers))
        container = _at(document["config"], path)
        if not container:
            continue
        keys = list(container) if isinstance(container, dict) else list(range(len(container)))
        key = draw(st.sampled_from(keys))
        action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "rename", "add", "dup"]))
        if action == "replace":
            container[key] = draw(VALUES)
        elif action == "delete":
            del container[key]
        elif action == "rename" and isinstance(container, dict):
            container[draw(HOSTILE_TEXT)] = container.pop(key)
        elif action == "add" and isinstance(container, dict):
            container[draw(st.one_of(HOSTILE_TEXT, st.text(max_size=12)))] = draw(VALUES)
        elif action == "dup" and isinstance(container, list):
            container.append(copy.deepcopy(container[key]))
    return document


def _load(tmp: Path, document: dict[str, Any]) -> tuple[Any, Any]:
    path = tmp / "Pulumi.fuzz.yaml"
    path.write_text(yaml.dump(document, Dumper=DUMPER, allow_unicode=True), encoding="utf-8")
    stack_file = read_stack_file(path, SOURCE)
    return stack_file, parse_stack_config(stack_file.raw, SOURCE, stack_file.secret_paths)


FUZZ = settings(
    derandomize=True,  # the same mutants every run
    max_examples=3000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


@FUZZ
@given(document=mutants())
def test_mutants_are_accepted_or_refused_with_a_key_path(
    tmp_path_factory: pytest.TempPathFactory, document: dict
) -> None:
    tmp = tmp_path_factory.getbasetemp()
    try:
        _load(tmp, document)
    except ConfigError as error:
        assert error.problems
        for line in error.problems:
            assert REFUSAL.match(line), line


@settings(
    derandomize=True,
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
@given(document=mutants())
def test_accepted_mutants_run_the_program_without_a_traceback(
    tmp_path_factory: pytest.TempPathFactory, document: dict
) -> None:
    tmp = tmp_path_factory.getbasetemp()
    try:
        stack_file, _ = _load(tmp, document)
    except ConfigError:
        assume(False)  # only accepted mutants count towards the examples of this test
        return
    raw = stack_file.raw
    secret_keys = [f"{PROJECT}:{path[0]}" for path in stack_file.secret_paths]
    run_raw(raw, stack="fuzz", secret_keys=secret_keys)
