"""Releases report themselves: the generated push step against a real Pushgateway, scraped by a real
Prometheus that evaluates the generated delivery rules; a down and a refusing Pushgateway.

A sequence of five releases (one failed, one cancelled, the last successful one followed by a page alert
of the service) must give the four measures the facts in the Pushgateway imply.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from components.config import StackConfig, parse_stack_config, prometheus_duration_seconds
from components.delivery import metrics
from components.delivery.rules import (
    CHANGE_FAILURE_RATE,
    DEPLOYMENT_FREQUENCY,
    DEPLOYMENTS,
    FAILED_CHANGES,
    LEAD_TIME_P50,
    LEAD_TIME_P90,
    TIME_TO_RESTORE_P50,
    rule_groups,
)
from components.github.delivery_report import LOKI_STEP_NAME
from components.github.files import render_files
from components.github.release_workflow import RELEASE_PUBLISH, release_workflow_path
from components.github.steps import METADATA_FILE
from tests.delivery.live import (
    Pushgateway,
    StepRun,
    commit_at,
    push_step,
    pushgateway_server,
    run_push_step,
)
from tests.helpers import parse, stack_raw
from tests.live import HTTP_TIMEOUT, free_port, prometheus_server

SERVICE = "go-http-server"
NAMESPACE = "delivery-dev"
FAILURE_WINDOW = "1m"
PAGE_SECONDS = 6
WAIT_SECONDS = 60.0
PASSWORD = "s3cret-push-token"


def delivery_config(url: str, username: str | None = None) -> StackConfig:
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
    step: dict[str, Any],
    workdir: Path,
    run_id: int,
    results: str,
    commit_age: int,
    ended_ago: int = 0,
    **kwargs: Any,
) -> StepRun:
    """A release whose commit is `commit_age` seconds older than its end, `ended_ago` seconds ago."""
    ended = int(time.time()) - ended_ago
    sha = commit_at(workdir, ended - commit_age)
    github = {"sha": sha, "run_id": str(run_id), "run_attempt": "1"}
    return run_push_step(step, workdir, expressions(results, ended - 300, **kwargs), github, ended_ago)


def query(url: str, expr: str) -> list[dict[str, Any]]:
    response = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=HTTP_TIMEOUT)
    response.raise_for_status()
    return list(response.json()["data"]["result"])


def value_of(url: str, expr: str) -> float | None:
    result = query(url, expr)
    assert len(result) <= 1, result
    return float(result[0]["value"][1]) if result else None


def wait_for(what: str, ready: Any, seconds: float = 60.0) -> Any:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        found = ready()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {seconds:g}s")


def group_facts(pushgateway: Pushgateway) -> dict[str, dict[str, Any]]:
    """release -> {metric name: [(labels, value)]} of every roadbike release group."""
    releases: dict[str, dict[str, Any]] = {}
    for group in pushgateway.groups():
        labels = group["labels"]
        if labels.get("job") != metrics.PUSH_JOB:
            continue
        facts: dict[str, Any] = {}
        for name, family in group.items():
            if isinstance(family, dict) and "metrics" in family:
                facts[name] = [(m["labels"], float(m["value"])) for m in family["metrics"]]
        releases[labels["release"]] = {"labels": labels, **facts}
    return releases


def single(facts: dict[str, Any], name: str) -> float:
    [(_, value)] = facts[name]
    return float(value)


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


def test_releases_give_the_four_measures(tmp_path: Path) -> None:
    with pushgateway_server(tmp_path / "pushgateway") as pushgateway:
        config = delivery_config(pushgateway.url)
        step = push_step(config)
        rules = tmp_path / "delivery.rules.yml"
        rules.write_text(yaml.safe_dump({"groups": rule_groups(config)}))
        page_rules = tmp_path / "page.rules.yml"
        page_rules.write_text(yaml.safe_dump(PAGE_RULES))
        scrape = {
            "job_name": "pushgateway",
            "honor_labels": True,
            "scrape_interval": "1s",
            "static_configs": [{"targets": [pushgateway.url.removeprefix("http://")]}],
        }
        runs = {
            101: ("success " * 8, 3 * 3600),
            102: ("success failure skipped skipped skipped skipped success", 1800),
            103: ("success " * 8, 1 * 3600),
            105: ("success success cancelled skipped skipped skipped skipped", 600),
        }
        # the releases before the last one end more than the failure window before the page
        earlier = prometheus_duration_seconds(FAILURE_WINDOW) + 10
        for run_id, (results, age) in runs.items():
            outcome = release(step, tmp_path / f"repo-{run_id}", run_id, results, age, earlier)
            assert outcome.returncode == 0, outcome.log
            assert "reported (HTTP 200)" in outcome.summary, outcome.summary
        last = release(step, tmp_path / "repo-104", 104, "success " * 8, 2 * 3600)
        assert last.returncode == 0, last.log

        facts = group_facts(pushgateway)
        assert sorted(facts) == ["101-1", "102-1", "103-1", "104-1", "105-1"]
        outcomes = {r: f[metrics.INFO][0][0]["outcome"] for r, f in facts.items()}
        assert outcomes == {
            "101-1": "success",
            "102-1": "failure",
            "103-1": "success",
            "104-1": "success",
            "105-1": "cancelled",
        }
        first = facts["101-1"]
        assert first["labels"] == {
            "job": metrics.PUSH_JOB,
            "service": SERVICE,
            "environment": "dev",
            "release": "101-1",
        }
        info_labels = first[metrics.INFO][0][0]
        assert info_labels["version"] == "1.4.2" and info_labels["go_version"] == "go1.23.4"
        assert len(info_labels["commit"]) == 40
        assert single(first, metrics.COVERAGE) == 84.2
        sizes = {labels["binary"]: value for labels, value in first[metrics.BINARY_SIZE]}
        assert sizes == {f"{SERVICE}-linux-amd64": 6291456, f"{SERVICE}-darwin-arm64": 6029312}
        leads = {r: single(f, metrics.END_TIME) - single(f, metrics.COMMIT_TIME) for r, f in facts.items()}
        for run_id, (_, age) in {**runs, 104: ("", 2 * 3600)}.items():
            assert age <= leads[f"{run_id}-1"] <= age + 10, leads
        deployed = sorted(leads[r] for r in ("101-1", "103-1", "104-1"))

        with prometheus_server(tmp_path / "prometheus", [rules, page_rules], [scrape]) as prometheus:
            labels = f'{{service="{SERVICE}",environment="dev"}}'
            wait_for("the releases scraped", lambda: value_of(prometheus.url, DEPLOYMENTS + labels) == 3)
            requests.put(
                f"{pushgateway.url}/metrics/job/test_page",
                data="roadbike_test_page 1\n",
                timeout=HTTP_TIMEOUT,
            ).raise_for_status()
            firing = 'ALERTS{alertname="TestPage",alertstate="firing"}'
            wait_for("the page alert firing", lambda: query(prometheus.url, firing))
            time.sleep(PAGE_SECONDS)
            requests.delete(
                f"{pushgateway.url}/metrics/job/test_page", timeout=HTTP_TIMEOUT
            ).raise_for_status()
            restore = wait_for(
                "the incident's time to restore",
                lambda: value_of(prometheus.url, TIME_TO_RESTORE_P50 + labels),
            )
            paged = value_of(prometheus.url, f"count_over_time({firing}[10m])")
            measured = {
                name: value_of(prometheus.url, name + labels)
                for name in (
                    DEPLOYMENTS,
                    DEPLOYMENT_FREQUENCY,
                    LEAD_TIME_P50,
                    LEAD_TIME_P90,
                    FAILED_CHANGES,
                    CHANGE_FAILURE_RATE,
                )
            }

    assert measured[DEPLOYMENTS] == 3
    assert measured[DEPLOYMENT_FREQUENCY] == pytest.approx(3 / 30)
    assert measured[LEAD_TIME_P50] == pytest.approx(deployed[1])
    assert measured[LEAD_TIME_P90] == pytest.approx(deployed[1] + 0.8 * (deployed[2] - deployed[1]))
    assert measured[FAILED_CHANGES] == 1
    assert measured[CHANGE_FAILURE_RATE] == pytest.approx(1 / 3)
    # the page's length as the incident tracking saw it, against the evaluations the alert fired in
    assert paged is not None and paged >= PAGE_SECONDS
    assert abs(restore - paged) <= 3, (restore, paged)


def test_a_down_pushgateway_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    config = delivery_config(f"http://127.0.0.1:{free_port()}")
    outcome = release(push_step(config), tmp_path / "repo", 201, "success " * 8, 60)
    assert outcome.returncode == 0, outcome.log
    assert "::warning::The Pushgateway is unreachable (curl exit 7" in outcome.log
    assert ":warning: The Pushgateway: unreachable" in outcome.summary


def test_refused_credentials_fail_the_release_and_good_ones_push(tmp_path: Path) -> None:
    with pushgateway_server(tmp_path / "pushgateway", "roadbike", PASSWORD) as pushgateway:
        step = push_step(delivery_config(pushgateway.url, username="roadbike"))
        assert step["env"]["PUSHGATEWAY_PASSWORD"] == "${{ secrets.PUSHGATEWAY_PASSWORD }}"
        good = release(step, tmp_path / "good", 301, "success " * 8, 60)
        assert good.returncode == 0, good.log
        assert sorted(group_facts(pushgateway)) == ["301-1"]

        wrong = dict(step, env={**step["env"], "PUSHGATEWAY_PASSWORD": "not-the-password"})
        refused = release(wrong, tmp_path / "refused", 302, "success " * 8, 60)
        assert refused.returncode == 1, refused.log
        assert "::error::The Pushgateway refused the credentials (HTTP 401)" in refused.log
        assert "refused the credentials" in refused.summary
        assert sorted(group_facts(pushgateway)) == ["301-1"]
        for text in (good.log, good.summary, refused.log, refused.summary):
            assert PASSWORD not in text and "not-the-password" not in text


# --- Loki ------------------------------------------------------------------------------------------


class _LokiPush(BaseHTTPRequestHandler):
    """Loki's push endpoint (POST /loki/api/v1/push, 204): no Loki can run here, this records the body."""

    bodies: list[bytes]

    def do_POST(self) -> None:
        length = min(int(self.headers.get("Content-Length", "0")), 1 << 20)
        type(self).bodies.append(self.rfile.read(length))
        self.send_response(204 if self.path == "/loki/api/v1/push" else 404)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def loki() -> Iterator[tuple[str, list[bytes]]]:
    handler = type("Handler", (_LokiPush,), {"bodies": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/loki/api/v1/push", handler.bodies
    finally:
        server.shutdown()
        server.server_close()


def test_loki_gets_the_build_metadata_document(tmp_path: Path, loki: tuple[str, list[bytes]]) -> None:
    url, bodies = loki
    raw = stack_raw("dev")
    raw["delivery"] = {"pushgateway": {"url": "https://pushgateway.example"}, "loki": {"url": url}}
    config = parse(raw)
    workflow = yaml.safe_load(render_files(config, config.services[0])[release_workflow_path(config)])
    [step] = [s for s in workflow["jobs"][RELEASE_PUBLISH]["steps"] if s.get("name") == LOKI_STEP_NAME]
    metadata = {"commit_sha": "ab" * 20, "build_id": "7.1", "go_version": "go1.23.4", "version": "1.4.2"}
    (tmp_path / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    outcome = run_push_step(step, tmp_path, {}, {"sha": "ab" * 20, "run_id": "7", "run_attempt": "1"})
    assert outcome.returncode == 0, outcome.log
    [body] = bodies
    [stream] = json.loads(body)["streams"]
    assert stream["stream"] == {"job": metrics.PUSH_JOB, "service": SERVICE, "environment": "dev"}
    [[timestamp, line]] = stream["values"]
    assert timestamp.isdigit() and len(timestamp) == 19
    assert json.loads(line) == metadata

    down = dict(step, env={**step["env"], "LOKI_URL": f"http://127.0.0.1:{free_port()}/loki/api/v1/push"})
    unreachable = run_push_step(down, tmp_path, {}, {"sha": "ab" * 20, "run_id": "8", "run_attempt": "1"})
    assert unreachable.returncode == 0, unreachable.log
    assert "::warning::Loki is unreachable" in unreachable.log
