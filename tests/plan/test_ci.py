"""The plan in CI: a failed plan says so in the files CI reads, and the README's workflow works."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

from tests.helpers import REPO, check_jsonschema, roadbike, zizmor
from tests.plan.test_e2e import sarif_schema

BAD_CONFIG = "config:\n  roadbike:environment: moon\n"


def test_a_failed_plan_replaces_the_previous_result_with_its_errors(plans: dict, tmp_path: Path) -> None:
    out = tmp_path / "plan"
    shutil.copytree(plans["dev"][0], out)
    config = tmp_path / "Pulumi.dev.yaml"
    config.write_text(BAD_CONFIG)
    result = roadbike("plan", "--stack", "dev", "--config-file", str(config), "--out", str(out))
    assert result.returncode == 2
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        ".roadbike-plan.json",  # roadbike's marker: the files it wrote
        "plan.json",
        "policy/report.json",
        "policy/report.sarif",
        "policy/summary.md",
    ]
    summary = (out / "policy/summary.md").read_text()
    assert "the plan failed" in summary and "policy gate passed" not in summary
    assert "roadbike:environment: Input should be 'dev', 'staging' or 'prod' (got 'moon')" in summary
    report = json.loads((out / "policy/report.json").read_text())
    assert report["summary"]["passed"] is False and report["errors"][-1].startswith("invalid stack config")
    sarif = json.loads((out / "policy/report.sarif").read_text())
    jsonschema.validate(sarif, sarif_schema())
    assert sarif["runs"][0]["invocations"][0]["executionSuccessful"] is False
    assert json.loads((out / "plan.json").read_text())["resources"] == []


def test_a_failed_plan_creates_nothing_and_spares_a_foreign_directory(tmp_path: Path) -> None:
    config = tmp_path / "Pulumi.dev.yaml"
    config.write_text(BAD_CONFIG)
    missing = tmp_path / "missing"
    assert (
        roadbike("plan", "--stack", "dev", "--config-file", str(config), "--out", str(missing)).returncode
        == 2
    )
    assert not missing.exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    assert (
        roadbike("plan", "--stack", "dev", "--config-file", str(config), "--out", str(foreign)).returncode
        == 2
    )
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def readme_workflow() -> str:
    readme = (REPO / "README.md").read_text()
    block = re.search(r"```yaml\n(# \.github/workflows/roadbike-plan\.yml\n.*?)```", readme, re.S)
    assert block, "the README's pull-request workflow"
    return block.group(1)


def test_the_readme_workflow_is_valid_and_audited(tmp_path: Path) -> None:
    workflow = tmp_path / "repo/.github/workflows/roadbike-plan.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(readme_workflow())
    checked = check_jsonschema("vendor.github-workflows", workflow)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    findings = zizmor(tmp_path / "repo")
    assert findings.returncode == 0, findings.stdout + findings.stderr
    assert json.loads(findings.stdout) == []
    job = yaml.safe_load(workflow.read_text())["jobs"]["plan"]
    assert job["strategy"]["fail-fast"] is False
    assert job["permissions"] == {"contents": "read", "actions": "read", "security-events": "write"}
    checkout, _venv, plan, summary, sarif = job["steps"]
    assert checkout["with"]["fetch-depth"] == 0
    assert ".venv/bin/roadbike plan --stack" in plan["run"] and '--against "$BASE"' in plan["run"]
    assert "make plan" not in plan["run"]  # make would turn the exit code 1 into 2
    assert summary["if"] == sarif["if"] == "always()"


def test_the_readme_workflow_steps_work_when_the_plan_fails(tmp_path: Path) -> None:
    """The plan step's script as the runner runs it, on a bad config: the later steps find their files."""
    job = yaml.safe_load(readme_workflow())["jobs"]["plan"]
    script = job["steps"][2]["run"].replace(
        ".venv/bin/roadbike", str(Path(sys.executable).parent / "roadbike")
    )
    config = tmp_path / "stacks/Pulumi.dev.yaml"
    config.parent.mkdir()
    config.write_text(BAD_CONFIG)
    (tmp_path / "Pulumi.yaml").write_text((REPO / "Pulumi.yaml").read_text())
    env = {"STACK": "dev", "BASE": "HEAD", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        ["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "error:" in (tmp_path / "out/dev/policy/summary.md").read_text()
    assert (tmp_path / "out/dev/policy/report.sarif").is_file()
