"""Observed for real: the example Go service (examples/go-http-server) on 127.0.0.1, scraped by the real
Prometheus with the dev stack's generated SLO rule files loaded; bounded traffic; fault injection at 50%
errors, or 400 ms added to every request (above the latency SLO's 0.3 s threshold), shows in the burn-rate
recordings above the page alert's threshold and fails `roadbike verify`'s SLI probe; without faults, it
passes."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from components.slo.files import slo_artifacts
from components.slo.probe import probe_outputs
from roadbike.stack_outputs import VerifyOptions
from roadbike.verify import verify
from tests.helpers import REPO, parse, require_tool, stack_raw
from tests.live import free_port, prometheus_server, running, wait_until

EXAMPLE = REPO / "examples" / "go-http-server"
SERVICE = "go-http-server"
NAMESPACE = "delivery-dev"
REQUESTS = 200
QUERY_SECONDS = 60.0


@pytest.fixture(scope="module")
def server_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bin") / SERVICE
    subprocess.run(
        [require_tool("go"), "build", "-trimpath", "-ldflags", "-X main.version=1.4.2", "-o", str(out), "."],
        cwd=EXAMPLE,
        check=True,
        capture_output=True,
        timeout=900,
    )
    return out


@dataclass
class Observed:
    service_url: str
    prometheus_url: str

    def query(self, expression: str) -> float | None:
        response = requests.get(
            f"{self.prometheus_url}/api/v1/query", params={"query": expression}, timeout=5
        )
        result = response.json()["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, expression: str) -> float:
        """The value once Prometheus has it (rules evaluate every second, scrapes every second)."""
        end = time.monotonic() + QUERY_SECONDS
        while time.monotonic() < end:
            value = self.query(expression)
            if value is not None:
                return value
            time.sleep(0.5)
        raise AssertionError(f"no value for {expression} after {QUERY_SECONDS:g}s")


@contextlib.contextmanager
def observed(tmp_path: Path, binary: Path, *flags: str) -> Iterator[Observed]:
    port = free_port()
    log = tmp_path / "service.log"
    with running([str(binary), f"-addr=127.0.0.1:{port}", *flags], log) as process:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.get(f"{url}/healthz", timeout=1).ok, SERVICE, process, log)
        rules = tmp_path / f"{SERVICE}.rules.yml"
        rules.write_text(slo_artifacts(parse(stack_raw("dev")))[f"prometheus/{SERVICE}.rules.yml"])
        scrape = {
            "job_name": SERVICE,
            "scrape_interval": "1s",
            "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": {"namespace": NAMESPACE}}],
        }
        with prometheus_server(tmp_path / "prometheus", [rules], [scrape]) as prometheus:
            run = Observed(service_url=url, prometheus_url=prometheus.url)
            wait_for_scrape_before_traffic(run)
            yield run


def wait_for_scrape_before_traffic(observed_run: Observed) -> None:
    """The service starts its API's 500 series at 0; once Prometheus holds that 0, rate() over the windows
    counts every request that follows, and the recorded error ratio is the ratio of the traffic."""
    observed_run.wait_for(f'http_requests_total{{job="{SERVICE}",handler="/api/hello",code="500"}} == 0')


def traffic(url: str, count: int = REQUESTS, workers: int = 1) -> dict[int, int]:
    """`count` GETs of the API, `workers` at a time, each worker pausing 25 ms between requests (200 at
    one a time take about 5 s), so that the windows hold several scrapes of it. Bounded: each request has
    a 5 s timeout."""

    def worker(indexes: range) -> list[int]:
        codes = []
        with requests.Session() as session:
            for index in indexes:
                codes.append(session.get(f"{url}/api/hello?name=p{index}", timeout=5).status_code)
                time.sleep(0.025)
        return codes

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(worker, [range(w, count, workers) for w in range(workers)])
        return dict(Counter(code for codes in results for code in codes))


def page_threshold(slo: str) -> float:
    """The short window's error ratio above which the generated page alert of the SLO fires (14.4x)."""
    rules = yaml.safe_load(slo_artifacts(parse(stack_raw("dev")))[f"prometheus/{SERVICE}.rules.yml"])
    [expr] = [
        rule["expr"]
        for group in rules["groups"]
        for rule in group["rules"]
        if rule.get("labels", {}).get("slo") == slo
        and rule["labels"].get("severity") == "page"
        and "ratio_rate5m" in rule.get("expr", "")
    ]
    match = re.search(r"ratio_rate5m\{[^}]*\} > ([\d.]+)$", expr)
    assert match, expr
    return float(match.group(1))


def ratio(slo: str, window: str = "5m") -> str:
    return f'slo:sli_error:ratio_rate{window}{{namespace="{NAMESPACE}",service="{SERVICE}",slo="{slo}"}}'


def probe_verify(tmp_path: Path, url: str) -> dict[str, Any]:
    [service] = [s for s in parse(stack_raw("dev")).services if s.name == SERVICE]
    probe = probe_outputs(service)
    assert probe is not None
    outputs = {"services": {SERVICE: {"probe": {**probe, "url": f"{url}/api/hello", "requests": 40}}}}
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))
    out, err = io.StringIO(), io.StringIO()
    code = verify(VerifyOptions(outputs=path, timeout=30, only=("probe",)), out, err, as_json=True)
    [check] = json.loads(out.getvalue())["checks"]
    return {"code": code, **check}


def wait_for_traffic(observed_run: Observed, total: int) -> None:
    expression = f'sum(http_requests_total{{job="{SERVICE}",handler="/api/hello"}})'
    end = time.monotonic() + QUERY_SECONDS
    while time.monotonic() < end:
        if (observed_run.query(expression) or 0) >= total:
            return
        time.sleep(0.5)
    raise AssertionError(f"Prometheus never scraped {total} requests")


def test_without_faults_the_slis_record_no_errors_and_verify_passes(
    tmp_path: Path, server_binary: Path
) -> None:
    with observed(tmp_path, server_binary) as run:
        assert traffic(run.service_url) == {200: REQUESTS}
        wait_for_traffic(run, REQUESTS)
        time.sleep(2)  # one more rule evaluation after the last scrape
        assert run.wait_for(ratio("availability")) == 0
        assert run.wait_for(ratio("latency")) == 0  # no request slower than the le="0.3" bucket
        result = probe_verify(tmp_path, run.service_url)
    assert result["code"] == 0 and result["passed"] is True, result


def test_half_errors_show_in_the_burn_rates_and_fail_the_probe(tmp_path: Path, server_binary: Path) -> None:
    with observed(tmp_path, server_binary, "-fault-error-rate=0.5") as run:
        codes = traffic(run.service_url)
        assert set(codes) == {200, 500} and 0.35 < codes[500] / REQUESTS < 0.65, codes
        wait_for_traffic(run, REQUESTS)
        time.sleep(2)
        short, long = run.wait_for(ratio("availability", "5m")), run.wait_for(ratio("availability", "1h"))
        # the page's 1h/5m condition: 14.4 x the 0.5% budget = 7.2% errors over both windows
        assert short > 14.4 * 0.005 and long > 14.4 * 0.005, (short, long)
        assert abs(short - codes[500] / REQUESTS) < 0.02, (short, codes)
        result = probe_verify(tmp_path, run.service_url)
    assert result["code"] == 1 and result["passed"] is False, result
    assert "breaks the success, errors SLO" in result["message"], result["message"]


def test_added_latency_shows_in_the_latency_burn_rates_and_fails_the_probe(
    tmp_path: Path, server_binary: Path
) -> None:
    count = 60
    with observed(tmp_path, server_binary, "-fault-latency=400ms") as run:
        assert traffic(run.service_url, count, workers=6) == {200: count}
        wait_for_traffic(run, count)
        time.sleep(2)
        threshold = page_threshold("latency")
        assert threshold == pytest.approx(14.4 * (1 - 0.95))
        short, long = run.wait_for(ratio("latency", "5m")), run.wait_for(ratio("latency", "1h"))
        # every request is slower than the le="0.3" bucket: the whole SLI is bad, above the page's 72%
        assert short > threshold and long > threshold, (short, long, threshold)
        assert short == pytest.approx(1.0) and long == pytest.approx(1.0), (short, long)
        assert run.wait_for(ratio("availability")) == 0  # slow, not failing
        result = probe_verify(tmp_path, run.service_url)
    assert result["code"] == 1 and result["passed"] is False, result
    # every request waited the injected 400 ms, and a busy machine only adds to it
    p95 = re.search(r"p95 (\d+\.\d{3})s > 0\.3s", result["message"])
    assert p95 and float(p95.group(1)) >= 0.4, result["message"]
    assert result["message"].endswith("(breaks the latency SLO)"), result["message"]
