"""The typed stack config refuses every class of bad input with the key path and the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components.config import ConfigError, go_duration_seconds
from roadbike.stackfile import SECRET_STAND_IN, load_stack, read_stack_file
from tests.helpers import REPO, STACKS, parse, roadbike, stack_raw, write_stack


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(raw)
    return caught.value.problems


def edit(change) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    raw = stack_raw("dev")
    change(raw)
    return raw


@pytest.mark.parametrize("stack", STACKS)
def test_committed_stacks_parse(stack: str) -> None:
    config = parse(stack_raw(stack))
    assert config.environment == stack
    assert len(config.services) >= 2
    assert "go-http-server" in {s.name for s in config.services}


CASES = [
    ("unknown top-level key", lambda r: r.update(colour="blue"), "roadbike:colour", "unknown key"),
    (
        "unknown nested key",
        lambda r: r["services"][0].update(replicas=3),
        "roadbike:services[0].replicas",
        "unknown key",
    ),
    (
        "wrong type",
        lambda r: r["services"][0].update(coverageThreshold="high"),
        "roadbike:services[0].coverageThreshold",
        "number",
    ),
    (
        "out of range",
        lambda r: r["services"][0].update(coverageThreshold=120),
        "roadbike:services[0].coverageThreshold",
        "120",
    ),
    (
        "semver with v",
        lambda r: r["services"][0].update(version="v1.4.2"),
        "roadbike:services[0].version",
        "without the 'v' prefix",
    ),
    (
        "not semver",
        lambda r: r["services"][1].update(version="1.4"),
        "roadbike:services[1].version",
        "SemVer 2.0.0",
    ),
    (
        "bad chaos schedule",
        lambda r: r["services"][0]["chaos"][0].update(schedule="every 5 minutes"),
        "roadbike:services[0].chaos[0].schedule",
        "cron",
    ),
    (
        "bad @every duration",
        lambda r: r["services"][0]["chaos"][0].update(schedule="@every 5 minutes"),
        "roadbike:services[0].chaos[0].schedule",
        "Go duration",
    ),
    (
        "bad go duration",
        lambda r: r["services"][0]["chaos"][0].update(duration="60 seconds"),
        "roadbike:services[0].chaos[0].duration",
        "Go duration",
    ),
    (
        "bad latency",
        lambda r: r["services"][0]["chaos"][0].update(latency="100"),
        "roadbike:services[0].chaos[0].latency",
        "Go duration",
    ),
    (
        "duplicate service",
        lambda r: r["services"].append(dict(r["services"][0], repository="other")),
        "roadbike:services[2].name",
        "duplicate name 'go-http-server'",
    ),
    (
        "duplicate slo",
        lambda r: r["services"][0]["slos"].append(r["services"][0]["slos"][0]),
        "roadbike:services[0].slos[2].name",
        "duplicate name",
    ),
    (
        "not a DNS label",
        lambda r: r["services"][0].update(name="Go_HTTP"),
        "roadbike:services[0].name",
        "DNS-1123",
    ),
    (
        "namespace not DNS",
        lambda r: r["kubernetes"].update(namespace="Delivery.Dev"),
        "roadbike:kubernetes.namespace",
        "DNS-1123",
    ),
    (
        "objective 100",
        lambda r: r["services"][0]["slos"][0].update(objective=100),
        "roadbike:services[0].slos[0].objective",
        "less than 100",
    ),
    (
        "objective 0",
        lambda r: r["services"][0]["slos"][1].update(objective=0),
        "roadbike:services[0].slos[1].objective",
        "greater than 0",
    ),
    (
        "environment",
        lambda r: r.update(environment="qa"),
        "roadbike:environment",
        "'dev', 'staging' or 'prod'",
    ),
    (
        "external without host",
        lambda r: r.update(registry={"mode": "external"}),
        "roadbike:registry",
        "host is required",
    ),
    ("missing key", lambda r: r.pop("kubernetes"), "roadbike:kubernetes", "required key is missing"),
    (
        "no cluster",
        lambda r: r["kubernetes"].pop("cluster"),
        "roadbike:kubernetes.cluster",
        "the current context is never used",
    ),
    (
        "cluster and gitops",
        lambda r: r["kubernetes"].update(gitops={"directory": "deploy/dev"}),
        "roadbike:kubernetes.gitops",
        "keep either cluster or gitops",
    ),
    (
        "context with a blank",
        lambda r: r["kubernetes"].update(cluster={"context": "acme dev"}),
        "roadbike:kubernetes.cluster.context",
        "not a kubeconfig context name",
    ),
    (
        "gitops directory outside",
        lambda r: r["kubernetes"].update(cluster=None, gitops={"directory": "../elsewhere"}),
        "roadbike:kubernetes.gitops.directory",
        "without '..'",
    ),
    (
        "sli fields",
        lambda r: r["services"][0]["slos"][1]["sli"].pop("histogram"),
        "roadbike:services[0].slos[1].sli",
        "histogram",
    ),
    (
        "platform",
        lambda r: r["services"][0].update(platforms=["windows/amd64"]),
        "roadbike:services[0].platforms",
        "unsupported platform",
    ),
]


@pytest.mark.parametrize(("label", "change", "path", "reason"), CASES, ids=[c[0] for c in CASES])
def test_refusals_name_the_key_path_and_reason(label: str, change: Any, path: str, reason: str) -> None:
    lines = problems(edit(change))
    matching = [line for line in lines if f": {path}: " in line]
    assert matching, f"no problem names {path}: {lines}"
    assert any(reason in line for line in matching), matching
    assert all(line.startswith("stacks/Pulumi.test.yaml: roadbike:") for line in lines)


def test_one_line_per_problem() -> None:
    def two_problems(raw: dict[str, Any]) -> None:
        raw["services"][0]["version"] = "v1"
        raw["services"][1]["name"] = "Bad_Name"

    lines = problems(edit(two_problems))
    assert len(lines) == 2
    assert any("services[0].version" in line for line in lines)
    assert any("services[1].name" in line for line in lines)


def test_go_durations() -> None:
    assert go_duration_seconds("1m30s") == 90
    assert go_duration_seconds("100ms") == pytest.approx(0.1)
    assert go_duration_seconds("1.5h") == 5400


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda r: r["services"][0].update(version="v1.4.2"), "roadbike:services[0].version"),
        (
            lambda r: r["services"][0]["slos"][1].update(objective=100),
            "roadbike:services[0].slos[1].objective",
        ),
        (
            lambda r: r["services"][0]["chaos"][0].update(schedule="sometimes"),
            "roadbike:services[0].chaos[0].schedule",
        ),
        (lambda r: r.update(unknownThing=1), "roadbike:unknownThing"),
    ],
)
def test_plan_refuses_bad_config_with_exit_2(tmp_path: Path, change: Any, path: str) -> None:
    stack_file = write_stack(tmp_path / "Pulumi.bad.yaml", edit(change))
    out = tmp_path / "out"
    result = roadbike("plan", "--stack", "bad", "--config-file", str(stack_file), "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert f"Pulumi.bad.yaml: {path}: " in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not out.exists(), "nothing may be written for a refused config"


def test_plan_refuses_unreadable_yaml(tmp_path: Path) -> None:
    stack_file = tmp_path / "Pulumi.broken.yaml"
    stack_file.write_text("config:\n  roadbike:environment: [dev\n")
    result = roadbike(
        "plan", "--stack", "broken", "--config-file", str(stack_file), "--out", str(tmp_path / "o")
    )
    assert result.returncode == 2
    assert "not valid YAML (line" in result.stderr
    assert "Traceback" not in result.stderr


def test_plan_refuses_missing_stack(tmp_path: Path) -> None:
    result = roadbike("plan", "--stack", "nope", "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert "stacks/Pulumi.nope.yaml: stack config file not found" in result.stderr


@pytest.mark.parametrize(
    ("option", "kind"),
    [("--config-file", "directory"), ("--config-file", "binary"), ("--policy-pack-config", "directory")],
)
def test_unreadable_input_files_are_exit_2(tmp_path: Path, option: str, kind: str) -> None:
    target = tmp_path / "input"
    if kind == "directory":
        target.mkdir()
    else:
        target.write_bytes(b"config:\n  roadbike:environment: \xff\xfe\n")
    result = roadbike("plan", "--stack", "dev", option, str(target), "--out", str(tmp_path / "o"))
    assert result.returncode == 2, result.stderr
    assert f"error: {target}" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_out_directory_that_cannot_be_made_is_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = roadbike("plan", "--stack", "dev", "--out", str(blocker / "plan"))
    assert result.returncode == 2, result.stderr
    assert "error: --out" in result.stderr and "Traceback" not in result.stderr


def test_secret_values_only_where_a_secret_is_taken(tmp_path: Path) -> None:
    raw = stack_raw("prod")
    raw["kubernetes"]["deployer"] = {"kind": "ServiceAccount", "name": {"secure": "v1:abc"}}
    raw["services"][0]["probe"] = {"url": {"secure": "v1:def"}}
    stack_file = write_stack(tmp_path / "Pulumi.s.yaml", raw)
    result = roadbike("plan", "--stack", "s", "--config-file", str(stack_file), "--out", str(tmp_path / "o"))
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if "a secret value is accepted only for" in line]
    assert [line.split(": ")[2] for line in lines] == [
        "roadbike:kubernetes.deployer.name",
        "roadbike:services[0].probe.url",
    ]
    assert "roadbike:registry.password" in lines[0]
    assert SECRET_STAND_IN not in result.stderr + result.stdout


def test_the_registry_password_is_never_committed_and_the_plan_takes_a_secret_stand_in() -> None:
    committed = read_stack_file(REPO / "stacks/Pulumi.prod.yaml")
    assert "password" not in committed.raw["registry"]
    stack_file, config = load_stack(REPO / "stacks/Pulumi.prod.yaml", "stacks/Pulumi.prod.yaml")
    assert stack_file.raw["registry"]["password"] == SECRET_STAND_IN
    assert ("registry", "password") in stack_file.secret_paths
    assert config.registry.password is not None
    assert "roadbike:registry.password is not set" in stack_file.notices[0]


def test_an_external_registry_with_a_username_needs_its_password_under_the_engine() -> None:
    raw = read_stack_file(REPO / "stacks/Pulumi.prod.yaml").raw  # what `pulumi up` gets before it is set
    [line] = problems(raw)
    assert "roadbike:registry" in line
    assert "pulumi config set --secret --path 'roadbike:registry.password'" in line


def test_a_bad_secret_value_is_never_echoed() -> None:
    def numeric_password(raw: dict[str, Any]) -> None:
        raw["registry"] = {
            "mode": "external",
            "host": "registry.example.test",
            "username": "u",
            "password": 1234567890,
        }

    lines = problems(edit(numeric_password))
    assert any("roadbike:registry.password" in line for line in lines), lines
    assert not any("1234567890" in line for line in lines)
