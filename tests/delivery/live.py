"""The release workflow's push step as the workflow writes it, run with bash against a real Pushgateway
(Debian's `prometheus-pushgateway`) on 127.0.0.1: its `run:` text and its `env:`, each `${{ }}` given
the value GitHub would give it."""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import requests
import yaml

from components.config import StackConfig
from components.github.delivery_report import PUSH_STEP_NAME, RELEASE_REPORT
from components.github.files import render_files
from components.github.release_workflow import release_workflow_path
from tests.github.harness import EXPRESSION
from tests.helpers import require_tool
from tests.live import HTTP_TIMEOUT, free_port, running, wait_until

STEP_TIMEOUT = 120


@dataclass(frozen=True)
class Pushgateway:
    url: str
    username: str | None = None
    password: str | None = None

    def groups(self) -> list[dict[str, Any]]:
        """Every pushed group: its labels and metrics (the Pushgateway's own API)."""
        headers = {}
        if self.username and self.password:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        response = requests.get(f"{self.url}/api/v1/metrics", headers=headers, timeout=HTTP_TIMEOUT)
        response.raise_for_status()
        return list(response.json()["data"])


@contextlib.contextmanager
def pushgateway_server(
    directory: Path, username: str | None = None, password: str | None = None
) -> Iterator[Pushgateway]:
    """The Debian Pushgateway on a free port of 127.0.0.1; with basic auth (its --web.config.file)
    when a username and password are given."""
    binary = require_tool("prometheus-pushgateway")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    # memory only: Debian's build persists to /var/lib/prometheus by default
    command = [binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file=", "--log.level=warn"]
    if username and password:
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
        web_config = directory / "web.yml"
        web_config.write_text(yaml.safe_dump({"basic_auth_users": {username: hashed}}))
        command.append(f"--web.config.file={web_config}")
    log = directory / "pushgateway.log"
    url = f"http://127.0.0.1:{port}"
    with running(command, log) as process:
        wait_until(
            lambda: requests.get(f"{url}/-/ready", timeout=1).status_code in (200, 401),
            "pushgateway",
            process,
            log,
        )
        yield Pushgateway(url, username, password)


def push_step(config: StackConfig) -> dict[str, Any]:
    """The push step exactly as the stack commits the service's release workflow."""
    service = config.services[0]
    workflow = yaml.safe_load(render_files(config, service)[release_workflow_path(config)])
    [step] = [s for s in workflow["jobs"][RELEASE_REPORT]["steps"] if s.get("name") == PUSH_STEP_NAME]
    return dict(step)


@dataclass(frozen=True)
class StepRun:
    returncode: int
    log: str
    summary: str


def run_push_step(
    step: Mapping[str, Any],
    workdir: Path,
    expressions: Mapping[str, str],
    github: Mapping[str, str],
    ended_ago: int = 0,
) -> StepRun:
    """bash -eo pipefail on the step's `run:` with its `env:`; `expressions`: the value of each `${{ }}`
    (one that is not given fails the test: the step uses something this run does not know). With
    `ended_ago`, the step's `date` reads that many seconds in the past: a release that ended earlier."""

    def value(match: Any) -> str:
        expression = match.group(1)
        if expression not in expressions:
            raise AssertionError(f"the push step uses ${{{{ {expression} }}}}, which this run does not give")
        return expressions[expression]

    assert EXPRESSION.search(str(step["run"])) is None, "the script itself holds an expression"
    env = {key: EXPRESSION.sub(value, str(text)) for key, text in step["env"].items()}
    runner = workdir / "runner"
    temp = runner / "temp"
    temp.mkdir(parents=True, exist_ok=True)
    summary = runner / "step-summary.md"
    summary.write_text("")
    script = runner / "push.sh"
    script.write_text(str(step["run"]))
    path = os.environ["PATH"]
    if ended_ago:
        path = f"{_earlier_date(runner, ended_ago)}{os.pathsep}{path}"
    base = {
        "PATH": path,
        "HOME": str(runner),
        "LANG": "C.UTF-8",
        "RUNNER_TEMP": str(temp),
        "GITHUB_STEP_SUMMARY": str(summary),
        **{f"GITHUB_{k.upper()}": v for k, v in github.items()},
    }
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=workdir,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
    )
    return StepRun(result.returncode, result.stdout + result.stderr, summary.read_text())


def _earlier_date(runner: Path, seconds: int) -> Path:
    """A directory whose `date` is the system's, `seconds` earlier."""
    real = require_tool("date")
    directory = runner / "earlier"
    directory.mkdir(exist_ok=True)
    shim = directory / "date"
    shim.write_text(f'#!/bin/sh\nexec {real} -d "@$(( $({real} +%s) - {seconds} ))" "$@"\n')
    shim.chmod(0o755)
    return directory


def commit_at(repository: Path, timestamp: int) -> str:
    """A commit whose committer time is `timestamp` in a fresh repository (what checkout leaves)."""
    git = require_tool("git")
    repository.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "release",
        "GIT_AUTHOR_EMAIL": "release@example.invalid",
        "GIT_COMMITTER_NAME": "release",
        "GIT_COMMITTER_EMAIL": "release@example.invalid",
        "GIT_AUTHOR_DATE": f"@{timestamp} +0000",
        "GIT_COMMITTER_DATE": f"@{timestamp} +0000",
    }
    for args in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "release"]):
        subprocess.run([git, *args], cwd=repository, env=env, check=True, timeout=30, capture_output=True)
    return subprocess.run(
        [git, "rev-parse", "HEAD"], cwd=repository, check=True, capture_output=True, text=True, timeout=30
    ).stdout.strip()
