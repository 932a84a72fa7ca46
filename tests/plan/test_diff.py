"""The change set's rules, without a plan: matching by URN, property paths, what forces a replacement."""

from __future__ import annotations

import io
from typing import Any

import pytest

from roadbike.console import Progress, Style, display_type
from roadbike.diff import artifact_diffs, change_set, property_changes

STACK = "urn:pulumi:dev::roadbike::pulumi:pulumi:Stack::roadbike-dev"


def res(type_: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    urn = f"urn:pulumi:dev::roadbike::{type_}::{name}"
    return {"urn": urn, "type": type_, "name": name, "custom": True, "parent": "", "inputs": inputs}


@pytest.mark.parametrize(
    ("type_", "old", "new", "op", "reasons"),
    [
        (
            "kubernetes:core/v1:Namespace",
            {"metadata": {"name": "a"}},
            {"metadata": {"name": "b"}},
            "replace",
            ["metadata"],
        ),
        (
            "kubernetes:core/v1:Namespace",
            {"metadata": {"labels": {"x": "1"}}},
            {"metadata": {"labels": {"x": "2"}}},
            "update",
            [],
        ),
        (
            "kubernetes:apps/v1:Deployment",
            {"spec": {"selector": {"matchLabels": {"app": "a"}}}},
            {"spec": {"selector": {"matchLabels": {"app": "b"}}}},
            "replace",
            ["spec"],
        ),
        ("kubernetes:apps/v1:Deployment", {"spec": {"replicas": 1}}, {"spec": {"replicas": 2}}, "update", []),
        (
            "github:index/repositoryFile:RepositoryFile",
            {"file": "a", "content": "x"},
            {"file": "a", "content": "y"},
            "update",
            [],
        ),
        ("github:index/repositoryFile:RepositoryFile", {"file": "a"}, {"file": "b"}, "replace", ["file"]),
        ("random:index/randomPassword:RandomPassword", {"length": 40}, {"length": 48}, "replace", ["length"]),
        (
            "kubernetes:monitoring.coreos.com/v1:PrometheusRule",
            {"spec": {"a": 1}},
            {"spec": {"a": 1}},
            "same",
            [],
        ),
    ],
)
def test_update_or_replace_by_the_providers_rules(
    type_: str, old: dict, new: dict, op: str, reasons: list[str]
) -> None:
    changes = change_set([res(type_, "r", old)], [res(type_, "r", new)], STACK)
    step = changes.steps[1]
    assert (step.op, step.replace_reasons) == (op, reasons)


def test_created_deleted_and_the_stack_first() -> None:
    base = [res("kubernetes:core/v1:Namespace", "old", {})]
    head = [res("kubernetes:core/v1:Namespace", "new", {})]
    changes = change_set(base, head, STACK)
    assert [(s.op, s.name) for s in changes.steps] == [
        ("same", "roadbike-dev"),
        ("create", "new"),
        ("delete", "old"),
    ]
    assert changes.counts() == {"create": 1, "delete": 1, "same": 1}
    assert change_set(None, head, STACK).counts() == {"create": 2}


def test_property_paths_as_pulumi_writes_them() -> None:
    old = {"metadata": {"labels": {"app.kubernetes.io/name": "a"}}, "spec": {"rules": [{"expr": "1"}]}}
    new = {"metadata": {"labels": {"app.kubernetes.io/name": "b"}}, "spec": {"rules": [{"expr": "2"}, {}]}}
    assert [(c.path, c.kind) for c in property_changes(old, new)] == [
        ('metadata.labels["app.kubernetes.io/name"]', "update"),
        ("spec.rules[0].expr", "update"),
        ("spec.rules[1]", "add"),
    ]
    assert property_changes({"a": 1}, {"a": True}) == property_changes({"a": 1}, {"a": True})
    assert [c.kind for c in property_changes({"a": 1}, {"a": True})] == ["update"]


def test_artifact_diffs_name_added_and_removed_files() -> None:
    diffs = artifact_diffs({"a.yml": "x\n", "gone.yml": "y\n"}, {"a.yml": "z\n", "new.yml": "w\n"})
    assert sorted(diffs) == ["a.yml", "gone.yml", "new.yml"]
    assert "-x\n+z\n" in diffs["a.yml"] and "+++ /dev/null" in diffs["gone.yml"]


@pytest.mark.parametrize(
    ("token", "shown"),
    [
        ("github:index/repositoryFile:RepositoryFile", "github:index:RepositoryFile"),
        ("random:index/randomPassword:RandomPassword", "random:index:RandomPassword"),
        ("kubernetes:core/v1:Namespace", "kubernetes:core/v1:Namespace"),
        ("pulumi-python:dynamic/roadbike:CosignKeyPair", "pulumi-python:dynamic/roadbike:CosignKeyPair"),
        ("roadbike:chain:DeliveryChain", "roadbike:chain:DeliveryChain"),
    ],
)
def test_type_tokens_as_the_pulumi_cli_shows_them(token: str, shown: str) -> None:
    assert display_type(token) == shown


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_on_a_terminal_unless_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("COLUMNS", "80")
    assert Style.for_stream(Terminal()) == Style(True, 80)
    assert Style.for_stream(io.StringIO()).colour is False
    assert Style(True).paint("+", "create") == "\x1b[32m+\x1b[0m"
    monkeypatch.setenv("NO_COLOR", "1")
    assert Style.for_stream(Terminal()).colour is False


def test_progress_counts_the_resources_registered() -> None:
    err = io.StringIO()
    progress = Progress(err, every_seconds=0)
    for _ in range(3):
        progress.resource(None)
    assert [line.split(" (")[0].strip() for line in err.getvalue().splitlines()] == [
        "1 resource registered",
        "2 resources registered",
        "3 resources registered",
    ]
    quiet = io.StringIO()
    Progress(quiet, every_seconds=3600).resource(None)
    assert quiet.getvalue() == ""
