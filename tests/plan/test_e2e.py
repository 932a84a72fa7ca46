"""`roadbike plan` end to end, in a subprocess, for every committed stack and an insecure one."""

from __future__ import annotations

import filecmp
import json
import os
from pathlib import Path

import jsonschema
import pytest

from roadbike.redact import secret_texts
from tests.helpers import REPO, STACKS, roadbike, run_raw, stack_raw

SARIF_SCHEMA_ENV = "ROADBIKE_SARIF_SCHEMA"


def sarif_schema() -> dict:
    location = os.environ.get(SARIF_SCHEMA_ENV, str(REPO / ".tools" / "sarif-schema-2.1.0.json"))
    path = Path(location)
    if not path.is_absolute():
        path = REPO / path
    assert path.is_file(), f"SARIF 2.1.0 schema missing at {path}: run `make tools` (make test does)"
    return json.loads(path.read_text())


@pytest.mark.parametrize("stack", STACKS)
def test_plan_passes_for_committed_stack(plans: dict, stack: str) -> None:
    out, result = plans[stack]
    assert result.returncode == 0, result.stdout + result.stderr
    for relative in ("plan.json", "policy/report.json", "policy/report.sarif", "policy/summary.md"):
        assert (out / relative).is_file(), relative
    assert list((out / "k8s").glob("*/namespace-*.yaml"))
    plan = json.loads((out / "plan.json").read_text())
    assert plan["stack"] == stack
    assert {r["type"] for r in plan["resources"]} >= {
        "roadbike:chain:DeliveryChain",
        "kubernetes:core/v1:Namespace",
    }
    github = [r for r in plan["resources"] if r["type"].startswith("github:")]
    assert github and all("$pulumi:providers:github::github::" in r["provider"] for r in github)
    report = json.loads((out / "policy/report.json").read_text())
    assert report["summary"] == {"mandatory": 0, "advisory": 0, "passed": True}
    # Every resource, the Stack and one default provider per package used without an explicit one (an
    # explicit provider resource needs none).
    defaults = {
        r["type"].split(":")[0]
        for r in plan["resources"]
        if r["custom"] and not r["provider"] and not r["type"].startswith("pulumi:providers:")
    }
    assert report["analyzedResources"] == len(plan["resources"]) + 1 + len(defaults)
    assert {p["name"] for p in report["policies"]} >= {
        "namespace-pod-security-restricted",
        "default-branch-protected",
    }
    assert f"Previewing update ({stack}):" in result.stdout
    assert "pulumi:pulumi:Stack" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("stack", STACKS)
def test_sarif_is_valid_2_1_0(plans: dict, stack: str) -> None:
    out, _ = plans[stack]
    document = json.loads((out / "policy/report.sarif").read_text())
    jsonschema.validate(document, sarif_schema())
    assert document["version"] == "2.1.0"


def test_insecure_config_fails_and_names_the_policy(tmp_path: Path) -> None:
    out = tmp_path / "plan"
    config = REPO / "tests/fixtures/Pulumi.insecure.yaml"
    result = roadbike("plan", "--stack", "insecure", "--config-file", str(config), "--out", str(out))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[mandatory]  namespace-pod-security-restricted" in result.stdout
    report = json.loads((out / "policy/report.json").read_text())
    assert report["summary"]["passed"] is False
    assert {v["policy"] for v in report["violations"]} == {"namespace-pod-security-restricted"}
    sarif = json.loads((out / "policy/report.sarif").read_text())
    jsonschema.validate(sarif, sarif_schema())
    [finding] = sarif["runs"][0]["results"]
    assert finding["ruleId"] == "namespace-pod-security-restricted"
    assert finding["level"] == "error"
    assert "namespace-pod-security-restricted" in (out / "policy/summary.md").read_text()


def test_policy_pack_config_downgrades_to_advisory(tmp_path: Path) -> None:
    settings = tmp_path / "policy-config.json"
    settings.write_text(json.dumps({"namespace-pod-security-restricted": "advisory"}))
    config = REPO / "tests/fixtures/Pulumi.insecure.yaml"
    result = roadbike(
        "plan",
        "--stack",
        "insecure",
        "--config-file",
        str(config),
        "--out",
        str(tmp_path / "o"),
        "--policy-pack-config",
        str(settings),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[advisory]  namespace-pod-security-restricted" in result.stdout


def test_policy_pack_config_with_unknown_policy_is_exit_2(tmp_path: Path) -> None:
    settings = tmp_path / "policy-config.json"
    settings.write_text(json.dumps({"no-such-policy": "advisory"}))
    result = roadbike(
        "plan", "--stack", "dev", "--out", str(tmp_path / "o"), "--policy-pack-config", str(settings)
    )
    assert result.returncode == 2
    assert "no-such-policy: no such policy in the pack" in result.stderr


def test_two_runs_are_byte_identical(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert roadbike("plan", "--stack", "dev", "--out", str(first)).returncode == 0
    assert roadbike("plan", "--stack", "dev", "--out", str(second)).returncode == 0
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    match, mismatch, errors = filecmp.cmpfiles(first, second, [str(f) for f in files], shallow=False)
    assert mismatch == [] and errors == []
    assert len(match) == len(files) >= 5


def test_json_is_pulumi_preview_json(plans: dict, tmp_path: Path) -> None:
    result = roadbike("plan", "--stack", "dev", "--out", str(tmp_path / "o"), "--json")
    assert result.returncode == 0, result.stderr
    preview = json.loads(result.stdout)
    assert set(preview) == {"config", "steps", "diagnostics", "policyEvents", "duration", "changeSummary"}
    assert preview["config"]["roadbike:environment"] == "dev"
    plan = json.loads((plans["dev"][0] / "plan.json").read_text())
    # The stack counts, as in the tree's `+ 72 to create` and plan.json's change summary.
    assert (
        preview["changeSummary"] == {"create": len(plan["resources"]) + 1} == plan["changes"]["changeSummary"]
    )
    assert f"    + {len(plan['resources']) + 1} to create" in plans["dev"][1].stdout
    stack, *steps = preview["steps"]
    assert stack["op"] == "create" and stack["newState"]["outputs"]["environment"] == "dev"
    assert {s["op"] for s in steps} == {"create"} and all(s["newState"]["type"] for s in steps)


def test_json_on_a_config_error_prints_the_errors_as_diagnostics(tmp_path: Path) -> None:
    config = tmp_path / "Pulumi.dev.yaml"
    config.write_text("config:\n  roadbike:environment: moon\n")
    result = roadbike(
        "plan", "--stack", "dev", "--config-file", str(config), "--out", str(tmp_path / "o"), "--json"
    )
    assert result.returncode == 2
    diagnostics = json.loads(result.stdout)["diagnostics"]
    assert diagnostics[-1] == {
        "message": "error: invalid stack config; no resource was planned\n",
        "severity": "error",
    }
    assert any("roadbike:environment" in d["message"] for d in diagnostics)


@pytest.mark.parametrize("columns", [80, 40])
def test_lines_fit_the_width_and_no_colour_off_a_terminal(tmp_path: Path, columns: int) -> None:
    result = roadbike("plan", "--stack", "dev", "--out", str(tmp_path / "o"), env={"COLUMNS": str(columns)})
    assert result.returncode == 0, result.stderr
    tree = result.stdout.split("\n\n", 1)[0].splitlines()[1:]
    assert len(tree) > 70 and max(len(line) for line in tree) <= columns
    if columns == 80:  # the Type and Name columns give way first: the Plan column stays readable
        assert all(line.endswith("create") for line in tree[1:]), tree
    assert "\x1b[" not in result.stdout


def test_the_tree_order_is_stable(plans: dict) -> None:
    """Each resource's children by type, then name, whatever order the program registered them in."""
    rows = [line.split() for line in plans["dev"][1].stdout.split("Policies:", 1)[0].splitlines()]
    chain = next(i for i, row in enumerate(rows) if "roadbike:chain:DeliveryChain" in row)
    assert rows[chain + 1][-3:] == ["github:index:Repository", "go-http-server-repository", "create"]
    schedules = [row[-2] for row in rows if "kubernetes:chaos-mesh.org/v1alpha1:Schedule" in row]
    assert schedules == sorted(schedules) and len(schedules) == 3


def test_the_gate_failing_ends_with_an_error_line(tmp_path: Path) -> None:
    config = REPO / "tests/fixtures/Pulumi.insecure.yaml"
    result = roadbike(
        "plan", "--stack", "insecure", "--config-file", str(config), "--out", str(tmp_path / "o")
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == "error: the policy gate failed: 1 mandatory policy violation"


def test_version() -> None:
    result = roadbike("--version")
    assert result.returncode == 0 and result.stdout.startswith("roadbike 0.")


def test_refuses_to_overwrite_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    result = roadbike("plan", "--stack", "dev", "--out", str(tmp_path))
    assert result.returncode == 2
    assert (tmp_path / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize("stack", STACKS)
def test_no_secret_value_in_clear_anywhere_in_the_plan(plans: dict, stack: str) -> None:
    out, result = plans[stack]
    run = run_raw(stack_raw(stack), stack=stack)
    secrets: set[str] = set()
    for recorded in run.resources:
        secret_texts(recorded.inputs, secrets)
    secret_texts(run.outputs, secrets)
    texts = [result.stdout, result.stderr] + [p.read_text() for p in out.rglob("*") if p.is_file()]
    leaked = sorted(s for s in secrets for text in texts if s in text)
    assert leaked == []


def test_policy_settings_that_break_the_policy_schema_are_exit_2(tmp_path: Path) -> None:
    settings = tmp_path / "policy-config.json"
    settings.write_text(json.dumps({"chaos-duration-cap": {"maxDuration": 5}}))
    result = roadbike(
        "plan", "--stack", "dev", "--out", str(tmp_path / "o"), "--policy-pack-config", str(settings)
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "chaos-duration-cap.maxDuration: 5 is not of type 'string'" in result.stderr
    assert not (tmp_path / "o" / "plan.json").exists()


@pytest.mark.parametrize("stack", STACKS)
def test_no_applyable_manifest_holds_a_redacted_value(plans: dict, stack: str) -> None:
    """`kubectl apply -f k8s/` reads .yaml, .yml and .json: none of those may carry a `[secret]`."""
    out, _ = plans[stack]
    applyable = [p for p in (out / "k8s").rglob("*") if p.suffix in (".yaml", ".yml", ".json")]
    assert applyable and [p.name for p in applyable if "[secret]" in p.read_text()] == []
    redacted = sorted(p.name for p in (out / "k8s").rglob("*.redacted"))
    assert redacted and all(name.startswith("secret-") for name in redacted)
    for path in (out / "k8s").rglob("*.redacted"):
        assert path.read_text().startswith("# Redacted by roadbike plan: every value below is [secret].")


def test_a_stack_planned_from_another_stacks_file_is_named(tmp_path: Path) -> None:
    result = roadbike(
        "plan", "--stack", "prod", "--config-file", "stacks/Pulumi.dev.yaml", "--out", str(tmp_path / "o")
    )
    assert result.returncode == 0, result.stderr
    assert (
        "warning: stack 'prod' is planned from stacks/Pulumi.dev.yaml, the file of stack 'dev'"
        in result.stderr
    )
    assert "warning: stack 'prod' has roadbike:environment 'dev' (stacks/Pulumi.dev.yaml)" in result.stderr
