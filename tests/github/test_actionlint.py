"""The second workflow linter: actionlint (built from its Go module, `make go-tools`) with Debian's
shellcheck on every `run:` script, over every workflow of every service of every committed stack."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from components.github.files import render_files
from components.github.steps import WORKFLOW_DIRECTORY
from tests.github.harness import RUNNER_TOOLS
from tests.helpers import STACKS, parse, require_go_tool, require_tool, stack_raw


def write_workflows(directory: Path) -> list[Path]:
    paths = []
    for stack in STACKS:
        config = parse(stack_raw(stack))
        for service in config.services:
            for name, text in render_files(config, service).items():
                if name.startswith(WORKFLOW_DIRECTORY):
                    path = directory / stack / service.name / name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(text)
                    paths.append(path)
    return paths


def actionlint(*paths: Path) -> tuple[int, list[dict[str, Any]]]:
    command = [
        require_go_tool("actionlint"),
        f"-shellcheck={require_tool('shellcheck')}",
        "-format",
        "{{json .}}",
        *map(str, paths),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout or "[]")


def test_every_generated_workflow_passes_actionlint_and_shellcheck(tmp_path: Path) -> None:
    paths = write_workflows(tmp_path)
    assert len(paths) == 4 * len(STACKS) - 4  # ci.yml once (dev owns the repositories), release per stack
    code, findings = actionlint(*paths)
    assert (code, findings) == (0, [])


def test_actionlint_reports_what_shellcheck_finds_in_a_run_script(tmp_path: Path) -> None:
    """The check above can fail: an unquoted expansion in one run: script is a shellcheck finding."""
    [path] = [p for p in write_workflows(tmp_path) if p.name == "ci.yml" and "go-http-server" in str(p)]
    path.write_text(path.read_text().replace("run: go vet ./...", "run: go vet $PACKAGES"))
    code, findings = actionlint(path)
    assert code == 1
    assert [f["kind"] for f in findings] == ["shellcheck"], findings
    assert "SC2086" in findings[0]["message"], findings


def test_the_harness_runner_tools_pass_shellcheck() -> None:
    scripts = sorted(RUNNER_TOOLS.iterdir())
    assert [p.name for p in scripts] == ["docker"]
    result = subprocess.run(
        [require_tool("shellcheck"), "--format=gcc", *map(str, scripts)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (result.returncode, result.stdout) == (0, "")
