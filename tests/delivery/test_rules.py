"""The delivery rules of every committed stack through promtool: they load, and their generated unit
tests (releases, a page alert, SLI-gate AnalysisRuns, the levels' tickets) pass; a defect in the rules
makes them fail."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.delivery.files import DIRECTORY, delivery_artifacts
from components.delivery.promtool_tests import RULES_FILE, TESTS_FILE, Scenario, promtool_tests
from components.delivery.rules import (
    CHANGE_FAILURE_RATE,
    FAILED_CHANGES,
    GATE_FAILED,
    GATE_FAILURE_TIME,
    RELEASE_FAILED,
    alert_rules,
    alerts_prometheus_rule,
    prometheus_rule,
    rule_groups,
)
from components.yaml_text import to_yaml
from tests.helpers import STACKS, crd_errors, parse, require_tool, stack_raw

PROMTOOL_TIMEOUT = 300


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=PROMTOOL_TIMEOUT
    )


def write(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (directory / Path(name).name).write_text(text)
    return directory


@pytest.mark.parametrize("stack", STACKS)
def test_rules_load_and_their_unit_tests_pass(stack: str, tmp_path: Path) -> None:
    config = parse(stack_raw(stack))
    files = delivery_artifacts(config)
    assert sorted(files) == [f"{DIRECTORY}/{RULES_FILE}", f"{DIRECTORY}/{TESTS_FILE}"]
    write(tmp_path, files)
    checked = promtool("check", "rules", RULES_FILE, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", TESTS_FILE, cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_unit_tests_fail_on_rules_that_count_every_release_as_failed(tmp_path: Path) -> None:
    config = parse(stack_raw("dev"))
    groups = rule_groups(config)
    for rule in groups[0]["rules"]:
        if rule.get("record") == RELEASE_FAILED:
            rule["expr"] = re.sub(r"\) >= 0 <= \d+\)", "))", rule["expr"])  # no failure window, no order
    write(tmp_path, {RULES_FILE: to_yaml({"groups": groups}), TESTS_FILE: to_yaml(promtool_tests(config))})
    tested = promtool("test", "rules", TESTS_FILE, cwd=tmp_path)
    assert tested.returncode != 0
    assert FAILED_CHANGES in tested.stdout + tested.stderr
    assert CHANGE_FAILURE_RATE in tested.stdout + tested.stderr


def _ignore_the_gate(rule: dict[str, Any]) -> None:
    if rule.get("record") == RELEASE_FAILED:
        rule["expr"] = rule["expr"].split(" or ")[0]  # the page alone


def _take_a_run_back_in_the_scrape_as_new(rule: dict[str, Any]) -> None:
    if rule.get("record") == GATE_FAILURE_TIME:
        # seen failed one evaluation ago, instead of within the window
        rule["expr"] = re.sub(r"max_over_time\((.+?)\[30d\] (offset \w+)\)", r"\1 \2", rule["expr"])


def _read_only_honored_namespaces(rule: dict[str, Any]) -> None:
    if rule.get("record") == GATE_FAILED:
        rule["expr"] = re.sub(
            r"analysis_run_info\{[^}]*exported_namespace=\"[^\"]+\"\} or ", "", rule["expr"]
        )


@pytest.mark.parametrize(
    ("defect", "case"),
    [
        (_ignore_the_gate, "a failed SLI-gate run after the release is its failure"),
        (
            _take_a_run_back_in_the_scrape_as_new,
            "a run failed before the release and seen again after a scrape gap",
        ),
        (_read_only_honored_namespaces, "a failed SLI-gate run after the release is its failure"),
    ],
)
def test_a_gate_case_fails_on_the_defect_it_guards_against(
    defect: Callable[[dict[str, Any]], None], case: str, tmp_path: Path
) -> None:
    config = parse(stack_raw("dev"))
    tests = promtool_tests(config)
    [test] = [t for t in tests["tests"] if t["name"].startswith(case)]
    tests["tests"] = [test]
    write(tmp_path, {RULES_FILE: to_yaml({"groups": rule_groups(config)}), TESTS_FILE: to_yaml(tests)})
    assert promtool("test", "rules", TESTS_FILE, cwd=tmp_path).returncode == 0
    groups = rule_groups(config)
    for rule in groups[0]["rules"]:
        defect(rule)
    assert groups != rule_groups(config), "the defect changed no rule"
    write(tmp_path, {RULES_FILE: to_yaml({"groups": groups})})
    tested = promtool("test", "rules", TESTS_FILE, cwd=tmp_path)
    assert tested.returncode != 0
    assert FAILED_CHANGES in tested.stdout + tested.stderr


def test_the_scenario_crosses_levels_so_some_tickets_are_expected() -> None:
    config = parse(stack_raw("dev"))
    tests = promtool_tests(config)["tests"]
    expected = [c for t in tests for c in t.get("alert_rule_test", []) if c["exp_alerts"]]
    quiet = [c for t in tests for c in t.get("alert_rule_test", []) if not c["exp_alerts"]]
    assert expected and quiet
    assert {c["alertname"] for c in expected} == {
        "DeliveryDeploymentFrequencyYellow",
        "DeliveryChangeFailureRateRed",
    }
    assert Scenario(config).measures()[CHANGE_FAILURE_RATE] == pytest.approx(1 / 3)


@pytest.mark.parametrize("stack", STACKS)
def test_tickets_route_through_the_stack_alertmanager_routing(stack: str) -> None:
    config = parse(stack_raw(stack))
    for service in config.services:
        for rule in alert_rules(config, service):
            assert rule["labels"]["severity"] == "ticket"
            assert rule["labels"]["namespace"] == config.kubernetes.namespace
            assert rule["labels"]["delivery_level"] in ("yellow", "red")
            assert rule["annotations"]["runbook_url"].startswith("https://")


@pytest.mark.parametrize("stack", STACKS)
def test_prometheus_rules_fit_the_operator_crd(stack: str) -> None:
    config = parse(stack_raw(stack))
    manifests = [prometheus_rule(config), *(alerts_prometheus_rule(config, s) for s in config.services)]
    for manifest in manifests:
        assert crd_errors(manifest) == []
        assert yaml.safe_load(to_yaml(manifest))["spec"]["groups"][0]["interval"] == "1m"


def test_thresholds_from_the_config_reach_the_alerts() -> None:
    raw = stack_raw("dev")
    raw["delivery"]["thresholds"] = {"changeFailureRate": {"yellow": 20, "red": 40}}
    config = parse(raw)
    exprs = {r["alert"]: r["expr"] for r in alert_rules(config, config.services[0])}
    assert exprs["DeliveryChangeFailureRateRed"].endswith("> (0.4)")
    assert "> (0.2) and" in exprs["DeliveryChangeFailureRateYellow"]
