"""DeliveryHealth and the Pushgateway credentials under Pulumi's mock monitor: resources, parents,
secrets, stack outputs; the plan writes the delivery files."""

from __future__ import annotations

import json

import pytest

from roadbike.program import is_secret
from tests.helpers import STACKS, of_type, run_raw, stack_raw

DELIVERY_HEALTH = "roadbike:delivery:DeliveryHealth"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
SECRET = "github:index/actionsEnvironmentSecret:ActionsEnvironmentSecret"
VARIABLE = "github:index/actionsEnvironmentVariable:ActionsEnvironmentVariable"
PUSH_PASSWORD = "pushgateway-password-value"


@pytest.mark.parametrize("stack", STACKS)
def test_delivery_health_holds_the_rules_and_the_dashboard(stack: str) -> None:
    run = run_raw(stack_raw(stack), stack=stack)
    [health] = of_type(run, DELIVERY_HEALTH)
    assert health.inputs == {
        "environment": stack,
        "pushgatewayUrl": f"https://pushgateway.{stack}.acme.internal",
    }
    children = [r for r in run.resources if r.parent == health.urn]
    services = [s["name"] for s in stack_raw(stack)["services"]]
    assert sorted(r.type for r in children) == [CONFIG_MAP] + [PROMETHEUS_RULE] * (1 + len(services))
    rules = {r.inputs["metadata"]["name"]: r for r in children if r.type == PROMETHEUS_RULE}
    assert sorted(rules) == sorted(["delivery-health", *(f"{s}-delivery" for s in services)])
    assert [g["name"] for g in rules["delivery-health"].inputs["spec"]["groups"]] == ["roadbike-delivery"]
    for service in services:
        [group] = rules[f"{service}-delivery"].inputs["spec"]["groups"]
        assert all(rule["labels"]["service"] == service for rule in group["rules"])


def test_without_the_section_there_is_no_delivery_health() -> None:
    raw = stack_raw("dev")
    del raw["delivery"]
    run = run_raw(raw)
    assert of_type(run, DELIVERY_HEALTH) == []
    assert not [r for r in of_type(run, PROMETHEUS_RULE) if r.inputs["metadata"]["name"] == "delivery-health"]


def test_pushgateway_credentials_are_an_environment_variable_and_secret() -> None:
    raw = stack_raw("staging")
    raw["delivery"]["pushgateway"] |= {"username": "roadbike-release", "password": PUSH_PASSWORD}
    run = run_raw(raw, stack="staging", secret_keys=["roadbike:delivery"])
    secrets = [s for s in of_type(run, SECRET) if s.inputs["secretName"] == "PUSHGATEWAY_PASSWORD"]
    variables = [v for v in of_type(run, VARIABLE) if v.inputs["variableName"] == "PUSHGATEWAY_USERNAME"]
    repositories = sorted(s["repository"] for s in raw["services"])
    assert sorted(s.inputs["repository"] for s in secrets) == repositories
    assert sorted(v.inputs["repository"] for v in variables) == repositories
    for secret in secrets:
        assert secret.inputs["environment"] == "staging"
        assert is_secret(secret.inputs["value"])
    assert {v.inputs["value"] for v in variables} == {"roadbike-release"}
    clear = json.dumps([r.inputs for r in run.resources if r.type != SECRET], default=str)
    assert PUSH_PASSWORD not in clear


def test_plan_writes_the_delivery_files(plans: dict) -> None:  # type: ignore[type-arg]
    out, result = plans["prod"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / "prometheus" / "delivery" / "delivery.rules.yml").is_file()
    assert (out / "prometheus" / "delivery" / "delivery.test.yml").is_file()
    manifest = (out / "k8s" / "delivery-prod" / "prometheusrule-delivery-health.yaml").read_text()
    assert "roadbike:delivery_change_failure_rate:ratio30d" in manifest
    assert (out / "k8s" / "delivery-prod" / "configmap-delivery-dashboard.yaml").is_file()
    assert "DeliveryHealth" in result.stdout
