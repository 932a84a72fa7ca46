"""The SLI probe a service declares: thresholds taken from its SLOs, exported for `roadbike verify`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.config import ConfigError
from components.slo.probe import probe_outputs
from roadbike.stack_outputs import VerifyOptions, load_input
from tests.helpers import parse, run_raw, stack_raw


def dev_with(probe: dict[str, Any], slos: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    raw = stack_raw("dev")
    raw["services"][0]["probe"] = probe
    if slos is not None:
        raw["services"][0]["slos"] = slos
    return raw


def test_thresholds_come_from_the_slos() -> None:
    config = parse(dev_with({"url": "https://svc.example.test/healthz"}))
    assert probe_outputs(config.services[0]) == {
        "url": "https://svc.example.test/healthz",
        "requests": 50,
        "concurrency": 5,
        "latencyThresholdSeconds": 0.3,
        "successRatio": 0.995,
        "errorRatio": 0.005,
    }


def test_explicit_thresholds_win() -> None:
    probe = {
        "url": "http://127.0.0.1:8080/",
        "latencyThresholdSeconds": 0.25,
        "successRatio": 0.99,
        "errorRatio": 0.008,
    }
    config = parse(dev_with(probe))
    outputs = probe_outputs(config.services[0])
    assert outputs is not None
    assert (outputs["latencyThresholdSeconds"], outputs["successRatio"], outputs["errorRatio"]) == (
        0.25,
        0.99,
        0.008,
    )


def test_no_probe_no_output() -> None:
    config = parse(stack_raw("dev"))
    assert probe_outputs(config.services[1]) is None


def test_a_threshold_with_no_slo_to_take_it_from_is_refused() -> None:
    only_availability = [stack_raw("dev")["services"][0]["slos"][0]]
    with pytest.raises(ConfigError) as caught:
        parse(dev_with({"url": "https://svc.example.test/healthz"}, only_availability))
    assert caught.value.problems == [
        "stacks/Pulumi.test.yaml: roadbike:services[0].probe.latencyThresholdSeconds: "
        "required: the service has no latency SLO to take it from"
    ]


@pytest.mark.parametrize(
    ("probe", "key"),
    [({"url": "ftp://svc/healthz"}, "url"), ({"url": "https://svc/", "requests": 0}, "requests")],
)
def test_bad_probe_values_are_refused(probe: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(dev_with(probe))
    assert any(f"roadbike:services[0].probe.{key}: " in line for line in caught.value.problems)


def test_the_chain_exports_the_probe_and_verify_reads_it(
    plans: dict[str, tuple[Path, subprocess.CompletedProcess[str]]],
) -> None:
    run = run_raw(stack_raw("dev"), stack="dev")
    probe = run.outputs["services"]["go-http-server"]["probe"]
    assert probe["url"] == "https://go-http-server.dev.acme.internal/healthz"
    assert probe["errorRatio"] == 0.008 and probe["successRatio"] == 0.995
    assert "probe" not in run.outputs["services"]["orders-api"]
    out, result = plans["dev"]
    assert result.returncode == 0
    plan = json.loads((out / "plan.json").read_text())
    assert plan["outputs"]["services"]["go-http-server"]["probe"] == probe
    verify_input = load_input(VerifyOptions(outputs=out / "plan.json", only=("probe",)))
    [target] = [t for t in verify_input.services if t.probe is not None]
    assert target.probe is not None and target.probe.latency_threshold_seconds == 0.3
