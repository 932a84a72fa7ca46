"""SARIF results point at the stack file's key that causes each violation, from the repository root."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from roadbike import locations
from roadbike.locations import key_lines, repository_uri, violation_line, violation_path
from tests.helpers import REPO, roadbike

DEV = (REPO / "stacks/Pulumi.dev.yaml").read_text()
CHAOS = (
    "urn:pulumi:dev::roadbike::roadbike:chaos:ChaosSchedules$kubernetes:chaos-mesh.org/v1alpha1:Schedule::"
)


def line_of(text: str, needle: str, after: str = "") -> int:
    start = text.index(after) if after else 0
    return text[: text.index(needle, start)].count("\n") + 1


def test_a_chaos_violation_points_at_the_experiments_duration() -> None:
    lines, config = key_lines(DEV)
    path = violation_path("chaos-duration-cap", CHAOS + "go-http-server-chaos-cpu-stress", "", config)
    assert path == ("roadbike:services", 0, "chaos", 1, "duration")
    assert violation_line(lines, path) == line_of(DEV, "duration: 60s", after="name: cpu-stress")


def test_a_missing_key_points_at_its_nearest_parent() -> None:
    lines, config = key_lines(DEV)
    path = violation_path("chaos-prod-opt-in", CHAOS + "orders-api-chaos-x", "", config)
    assert path == ("roadbike:services", 1, "chaosOptIn")
    assert violation_line(lines, path) == line_of(DEV, "- name: orders-api")
    assert violation_line(lines, violation_path("no-such-policy", "urn:x::y", "", config)) == 1


def test_the_insecure_namespace_points_at_pod_security_with_a_repository_uri(tmp_path: Path) -> None:
    config = REPO / "tests/fixtures/Pulumi.insecure.yaml"
    result = roadbike(
        "plan", "--stack", "insecure", "--config-file", str(config.resolve()), "--out", str(tmp_path / "o")
    )
    assert result.returncode == 1
    [finding] = json.loads((tmp_path / "o/policy/report.sarif").read_text())["runs"][0]["results"]
    location = finding["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {
        "uri": "tests/fixtures/Pulumi.insecure.yaml",
        "uriBaseId": "%SRCROOT%",
    }
    assert location["region"]["startLine"] == line_of(config.read_text(), "podSecurity: baseline")


def test_a_file_outside_any_repository_is_named_alone(tmp_path: Path) -> None:
    assert repository_uri(tmp_path / "Pulumi.dev.yaml") == "Pulumi.dev.yaml"


@pytest.mark.parametrize(
    "path",
    sorted(
        str(p.relative_to(REPO))
        for p in [*REPO.glob("stacks/Pulumi.*.yaml"), *REPO.glob("tests/fixtures/*.yaml")]
    ),
)
def test_libyamls_lines_are_pyyamls_own(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (REPO / path).read_text()
    fast = key_lines(text)
    monkeypatch.setattr(locations, "_Loader", yaml.SafeLoader)
    monkeypatch.setattr(locations, "_Dumper", yaml.SafeDumper)
    assert fast == key_lines(text)
    assert fast[0], "every stack file has keys under config:"
