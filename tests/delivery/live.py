"""The release workflow's push step as the workflow writes it, run with bash against a real Pushgateway
(Debian's `prometheus-pushgateway`) on 127.0.0.1: its `run:` text and its `env:`, each `${{ }}` given
the value GitHub would give it; and a release sequence, the dev stack's delivery health on that
Pushgateway with a real Prometheus evaluating its rules (the live test and tools/delivery_dashboard.py)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import requests
import yaml

from components.config import StackConfig, parse_stack_config
from components.delivery.rules import rule_groups
from components.github.delivery_report import PUSH_STEP_NAME, RELEASE_REPORT
from components.github.files import render_files
from components.github.release_workflow import release_workflow_path
from tests.github.harness import EXPRESSION
from tests.helpers import parse, require_tool, stack_raw
from tests.live import HTTP_TIMEOUT, Prometheus, free_port, prometheus_server, running, wait_until

STEP_TIMEOUT = 120
SERVICE = "go-http-server"
NAMESPACE = "delivery-dev"
FAILURE_WINDOW = "1m"
PASSWORD = "s3cret-push-token"
PAGE_JOB = "test_page"


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
) -> StepRun:
    """bash -eo pipefail on the step's `run:` with its `env:`; `expressions`: the value of each `${{ }}`
    (one that is not given fails the test: the step uses something this run does not know)."""

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
    base = {
        "PATH": os.environ["PATH"],
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


# --- a release sequence ----------------------------------------------------------------------------


def delivery_config(url: str, username: str | None = None) -> StackConfig:
    """The dev stack with delivery health on the Pushgateway at `url` (basic auth with `username`),
    evaluated every second, failure window 1m."""
    raw = stack_raw("dev")
    pushgateway: dict[str, Any] = {"url": url}
    secrets = []
    if username:
        pushgateway |= {"username": username, "password": PASSWORD}
        secrets = [("delivery",)]
    raw["delivery"] = {
        "pushgateway": pushgateway,
        "evaluationInterval": "1s",
        "failureWindow": FAILURE_WINDOW,
    }
    if secrets:
        return parse_stack_config(raw, "stacks/Pulumi.test.yaml", secrets)
    return parse(raw)


def expressions(results: str, started_at: int, version: str = "1.4.2") -> dict[str, str]:
    """What GitHub gives the push step's expressions in a release of the example service."""
    return {
        "join(needs.*.result, ' ')": results,
        "needs.release-started.outputs.at": str(started_at),
        "needs.release-tag.outputs.version": version,
        "needs.release-test.outputs.coverage": "84.2",
        "needs.release-binaries.outputs.go-version": "go1.23.4",
        "needs.release-binaries.outputs.sizes": json.dumps(
            {f"{SERVICE}-linux-amd64": 6291456, f"{SERVICE}-darwin-arm64": 6029312}
        ),
        "vars.PUSHGATEWAY_USERNAME": "roadbike",
        "secrets.PUSHGATEWAY_PASSWORD": PASSWORD,
    }


def release(
    step: Mapping[str, Any], workdir: Path, run_id: int, results: str, commit_age: int, **kwargs: Any
) -> StepRun:
    """One release of the example service (run `run_id`, attempt 1, its jobs' `results`) pushed by
    `step`, of a commit `commit_age` seconds old."""
    now = int(time.time())
    sha = commit_at(workdir, now - commit_age)
    github = {"sha": sha, "run_id": str(run_id), "run_attempt": "1"}
    return run_push_step(step, workdir, expressions(results, now - 300, **kwargs), github)


def query(url: str, expr: str) -> list[dict[str, Any]]:
    """The instant query's result at a Prometheus."""
    response = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=HTTP_TIMEOUT)
    response.raise_for_status()
    return list(response.json()["data"]["result"])


# a page alert of the service while the Pushgateway holds roadbike_test_page
PAGE_RULES = {
    "groups": [
        {
            "name": "test-page",
            "rules": [
                {
                    "alert": "TestPage",
                    "expr": "roadbike_test_page > 0",
                    "labels": {"severity": "page", "namespace": NAMESPACE, "service": SERVICE},
                }
            ],
        }
    ]
}


@dataclass(frozen=True)
class ReleaseSequence:
    """The dev stack's delivery health on a live Pushgateway: its push step, releases of the example
    service through it, a page alert of the service on and off, and a Prometheus that scrapes the
    Pushgateway every second with the stack's delivery rules and the page rule."""

    config: StackConfig
    step: dict[str, Any]
    pushgateway: Pushgateway
    directory: Path

    def release(self, run_id: int, results: str, commit_age: int) -> StepRun:
        return release(self.step, self.directory / f"repo-{run_id}", run_id, results, commit_age)

    def start_page(self) -> None:
        url = f"{self.pushgateway.url}/metrics/job/{PAGE_JOB}"
        requests.put(url, data="roadbike_test_page 1\n", timeout=HTTP_TIMEOUT).raise_for_status()

    def end_page(self) -> None:
        url = f"{self.pushgateway.url}/metrics/job/{PAGE_JOB}"
        requests.delete(url, timeout=HTTP_TIMEOUT).raise_for_status()

    def prometheus(self) -> contextlib.AbstractContextManager[Prometheus]:
        rules = self.directory / "delivery.rules.yml"
        rules.write_text(yaml.safe_dump({"groups": rule_groups(self.config)}))
        page_rules = self.directory / "page.rules.yml"
        page_rules.write_text(yaml.safe_dump(PAGE_RULES))
        scrape = {
            "job_name": "pushgateway",
            "honor_labels": True,
            "scrape_interval": "1s",
            "static_configs": [{"targets": [self.pushgateway.url.removeprefix("http://")]}],
        }
        return prometheus_server(self.directory / "prometheus", [rules, page_rules], [scrape])


@contextlib.contextmanager
def release_sequence(directory: Path) -> Iterator[ReleaseSequence]:
    with pushgateway_server(directory / "pushgateway") as pushgateway:
        config = delivery_config(pushgateway.url)
        yield ReleaseSequence(config, push_step(config), pushgateway, directory)
