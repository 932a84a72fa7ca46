"""Bad input in roadbike:delivery: exit 2 naming the stack file and the key, nothing written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components.config import ConfigError, parse_stack_config
from tests.helpers import parse, roadbike, stack_raw, write_stack

KEY = "roadbike:delivery"


def delivery(**changes: Any) -> dict[str, Any]:
    raw = stack_raw("dev")
    section = raw["delivery"]
    for path, value in changes.items():
        target = section
        *parents, last = path.split("__")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[last] = value
    return raw


def problems(raw: dict[str, Any], secrets: list[tuple[str | int, ...]] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as refused:
        parse_stack_config(raw, "stacks/Pulumi.dev.yaml", secrets or [])
    return refused.value.problems


@pytest.mark.parametrize(
    ("changes", "path", "problem"),
    [
        (
            {"pushgateway__url": "http://pushgateway.acme.internal"},
            "pushgateway.url",
            "must be an https:// URL",
        ),
        ({"loki__url": "http://loki.acme.internal/loki/api/v1/push"}, "loki.url", "must be an https:// URL"),
        ({"pushgateway__url": "https://ci:hunter2@pg.acme.internal"}, "pushgateway.url", "holds credentials"),
        ({"loki__url": "https://loki.acme.internal/push?token=abc"}, "loki.url", "carries a credential"),
        ({"pushgateway__url": "https://pg.acme.internal/${{ secrets.X }}"}, "pushgateway.url", "may follow"),
        ({"thresholds__leadTime": {"yellow": "30d", "red": "7d"}}, "thresholds.leadTime", "must be shorter"),
        (
            {"thresholds__timeToRestore": {"yellow": "1d", "red": "500d"}},
            "thresholds.timeToRestore.red",
            "out of bounds",
        ),
        (
            {"thresholds__changeFailureRate": {"yellow": 10, "red": 150}},
            "thresholds.changeFailureRate.red",
            "less than or equal to 100",
        ),
        (
            {"thresholds__changeFailureRate": {"yellow": 20, "red": 15}},
            "thresholds.changeFailureRate",
            "must be below red",
        ),
        (
            {"thresholds__deploymentFrequency": {"yellow": "7d", "red": "60d"}},
            "thresholds.deploymentFrequency.red",
            "longer than the 30d window",
        ),
        (
            {"thresholds__leadTime": {"yellow": "a week", "red": "30d"}},
            "thresholds.leadTime.yellow",
            "not a Prometheus duration",
        ),
        ({"failureWindow": "30d"}, "failureWindow", "out of bounds"),
        ({"evaluationInterval": "10m"}, "evaluationInterval", "out of bounds"),
        ({"pushgateway__username": "release"}, "pushgateway", "needs both username and password"),
        ({"thresholds__speed": 1}, "thresholds.speed", "unknown key"),
    ],
)
def test_bad_delivery_config_names_the_key(changes: dict[str, Any], path: str, problem: str) -> None:
    [line] = problems(delivery(**changes))
    assert line.startswith(f"stacks/Pulumi.dev.yaml: {KEY}.{path}: "), line
    assert problem in line, line


def test_loopback_http_is_for_tests_and_defaults_are_the_dora_bands() -> None:
    config = parse(delivery(pushgateway__url="http://127.0.0.1:9091", loki__url="http://[::1]:3100/x"))
    assert config.delivery is not None
    thresholds = config.delivery.thresholds
    assert (thresholds.deployment_frequency.yellow, thresholds.deployment_frequency.red) == ("7d", "30d")
    assert (thresholds.lead_time.yellow, thresholds.lead_time.red) == ("7d", "30d")
    assert (thresholds.change_failure_rate.yellow, thresholds.change_failure_rate.red) == (10, 15)
    assert (thresholds.time_to_restore.yellow, thresholds.time_to_restore.red) == ("1d", "7d")


def test_a_plain_text_password_is_refused_without_echoing_it() -> None:
    raw = delivery(pushgateway__username="release", pushgateway__password="hunter2-plain")
    [line] = problems(raw)
    assert f"{KEY}.pushgateway.password: must be a secret" in line
    assert "hunter2-plain" not in line
    config = parse_stack_config(raw, "stacks/Pulumi.dev.yaml", [("delivery",)])
    assert config.delivery is not None and "hunter2" not in repr(config.delivery)


def test_plan_refuses_an_http_pushgateway_with_exit_2(tmp_path: Path) -> None:
    stack_file = write_stack(tmp_path / "Pulumi.bad.yaml", delivery(pushgateway__url="http://pg.example"))
    out = tmp_path / "out"
    result = roadbike("plan", "--stack", "bad", "--config-file", str(stack_file), "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert (
        f"Pulumi.bad.yaml: {KEY}.pushgateway.url: 'http://pg.example' must be an https:// URL"
        in result.stderr
    )
    assert "Traceback" not in result.stderr + result.stdout
    assert not out.exists()
