"""The release workflow's report, as rendered: a last job that always runs after every job, in the
tier's environment; config values reach the steps only through `env:`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from components.github.delivery_report import (
    LOKI_STEP_NAME,
    PUSH_STEP_NAME,
    RELEASE_REPORT,
    RELEASE_STARTED,
)
from components.github.files import render_files
from components.github.release_workflow import RELEASE_BINARIES, RELEASE_PUBLISH, release_workflow_path
from tests.helpers import STACKS, parse, stack_raw


def release(raw: dict[str, Any]) -> dict[str, Any]:
    config = parse(raw)
    return dict(yaml.safe_load(render_files(config, config.services[0])[release_workflow_path(config)]))


def named(job: dict[str, Any], name: str) -> dict[str, Any]:
    [step] = [s for s in job["steps"] if s.get("name") == name]
    return dict(step)


def test_the_report_is_the_last_job_and_always_runs_after_every_job() -> None:
    for stack in STACKS:
        jobs = release(stack_raw(stack))["jobs"]
        assert list(jobs)[-1] == RELEASE_REPORT
        report = jobs[RELEASE_REPORT]
        assert set(report["needs"]) == set(jobs) - {RELEASE_REPORT}
        assert report["if"] == "always()"
        assert report["environment"] == stack
        assert report["permissions"] == {"contents": "read"}
        push = named(report, PUSH_STEP_NAME)
        assert push["if"] == "always()"
        assert jobs[RELEASE_STARTED]["needs"] == ["release-tag"]


def test_config_values_reach_the_steps_only_through_env() -> None:
    scripts = []
    for url in ("https://pg.one.example", "https://pg.two.example:8443/prefix/"):
        raw = stack_raw("dev")
        raw["delivery"]["pushgateway"]["url"] = url
        raw["delivery"]["loki"]["url"] = url + "loki"
        workflow = release(raw)
        push = named(workflow["jobs"][RELEASE_REPORT], PUSH_STEP_NAME)
        loki = named(workflow["jobs"][RELEASE_PUBLISH], LOKI_STEP_NAME)
        assert push["env"]["PUSHGATEWAY_URL"] == url
        assert loki["env"]["LOKI_URL"] == url + "loki"
        assert url not in push["run"] + loki["run"]
        scripts.append((push["run"], loki["run"]))
    assert scripts[0] == scripts[1]


def test_without_loki_or_delivery_the_workflow_has_none_of_it() -> None:
    raw = stack_raw("dev")
    del raw["delivery"]["loki"]
    jobs = release(raw)["jobs"]
    assert LOKI_STEP_NAME not in [s.get("name") for s in jobs[RELEASE_PUBLISH]["steps"]]
    del raw["delivery"]
    jobs = release(raw)["jobs"]
    assert RELEASE_REPORT not in jobs and RELEASE_STARTED not in jobs
    assert "sizes" not in jobs[RELEASE_BINARIES]["outputs"]


def test_binary_sizes_step_measures_the_binaries(tmp_path: Path) -> None:
    jobs = release(stack_raw("dev"))["jobs"]
    [sizes] = [s for s in jobs[RELEASE_BINARIES]["steps"] if s.get("id") == "sizes"]
    assert jobs[RELEASE_BINARIES]["outputs"]["sizes"] == "${{ steps.sizes.outputs.sizes }}"
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "go-http-server-linux-amd64").write_bytes(b"\0" * 1234)
    (dist / "go-http-server-darwin-arm64").write_bytes(b"\0" * 99)
    (dist / "SHA256SUMS").write_text("not a binary\n")
    (tmp_path / "script.sh").write_text(sizes["run"])
    output = tmp_path / "github-output"
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "script.sh"],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "GITHUB_OUTPUT": str(output)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    key, _, value = output.read_text().strip().partition("=")
    assert key == "sizes"
    assert json.loads(value) == {"go-http-server-linux-amd64": 1234, "go-http-server-darwin-arm64": 99}
