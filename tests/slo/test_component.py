"""SloAlerts and SloRouting under Pulumi's mock monitor: resources, parents, schemas, stack outputs."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import jsonschema
import pytest

from components.slo.analysis import analysis_template
from components.slo.dashboard import dashboard_config_map
from components.slo.rules import prometheus_rule, slo_outputs
from components.slo.service_monitor import service_monitor
from roadbike.artifacts import kubernetes_manifest
from roadbike.program import ProgramRun, RecordedResource
from roadbike.redact import redact
from tests.helpers import STACKS, crd_errors, crd_schema, of_type, parse, run_raw, stack_raw, strict_schema

PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
ANALYSIS_TEMPLATE = "kubernetes:argoproj.io/v1alpha1:AnalysisTemplate"
ALERTMANAGER_CONFIG = "kubernetes:monitoring.coreos.com/v1alpha1:AlertmanagerConfig"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
SCHEMAS = (PROMETHEUS_RULE, SERVICE_MONITOR, ANALYSIS_TEMPLATE)


def validators(resource_type: str) -> list[jsonschema.Draft4Validator]:
    # Not check_schema: the PrometheusRule CRD's `^(?i)(abort|warn)?$` is a Go regex Python's re refuses.
    api_version, kind = resource_type.removeprefix("kubernetes:").split(":")
    schema = crd_schema(api_version, kind)
    return [jsonschema.Draft4Validator(schema), jsonschema.Draft4Validator(strict_schema(schema))]


def as_applied(resource: RecordedResource) -> dict[str, Any]:
    """The manifest as the plan writes it: integral protobuf numbers back to integers (`count: 5`)."""
    return kubernetes_manifest(replace(resource, inputs=redact(resource.inputs)))


@pytest.fixture(scope="module")
def runs() -> dict[str, ProgramRun]:
    return {stack: run_raw(stack_raw(stack), stack=stack) for stack in STACKS}


@pytest.mark.parametrize("stack", STACKS)
def test_custom_resources_validate_against_the_upstream_schemas(
    runs: dict[str, ProgramRun], stack: str
) -> None:
    run = runs[stack]
    for resource_type in SCHEMAS:
        # the SLO domain's objects (tests/delivery checks the delivery rules)
        resources = [r for r in of_type(run, resource_type) if "roadbike:delivery:" not in r.urn]
        assert len(resources) == len(stack_raw(stack)["services"])
        for validator in validators(resource_type):
            for resource in resources:
                errors = [e.message for e in validator.iter_errors(as_applied(resource))]
                assert errors == [], f"{resource.name}: {errors}"


def test_schema_check_catches_a_bad_duration() -> None:
    config = parse(stack_raw("dev"))
    manifest = prometheus_rule(config, config.services[0])
    manifest["spec"]["groups"][1]["rules"][-1]["for"] = "10 minutes"
    manifest["spec"]["groups"][0]["rulez"] = []
    lenient, strict_ = validators(PROMETHEUS_RULE)
    assert [e.validator for e in lenient.iter_errors(manifest)] == ["pattern"]
    assert sorted(e.validator for e in strict_.iter_errors(manifest)) == ["additionalProperties", "pattern"]


@pytest.mark.parametrize("stack", STACKS)
def test_slo_alerts_is_a_child_of_each_chain(runs: dict[str, ProgramRun], stack: str) -> None:
    run = runs[stack]
    by_urn = {r.urn: r for r in run.resources}
    chains = {r.name: r for r in run.resources if r.type == "roadbike:chain:DeliveryChain"}
    namespace = next(r for r in run.resources if r.type == "kubernetes:core/v1:Namespace")
    components = [r for r in run.resources if r.type == "roadbike:slo:SloAlerts"]
    assert sorted(c.name for c in components) == sorted(f"{name}-slo" for name in chains)
    for component in components:
        service = component.name.removesuffix("-slo")
        assert component.parent == chains[service].urn
        children = [r for r in run.resources if r.parent == component.urn]
        assert sorted(r.type for r in children) == sorted(
            [PROMETHEUS_RULE, SERVICE_MONITOR, ANALYSIS_TEMPLATE, CONFIG_MAP]
        )
        for child in children:
            assert namespace.urn in child.dependencies
            assert child.inputs["metadata"]["namespace"] == namespace.inputs["metadata"]["name"]
        names = {r.type: r.inputs["metadata"]["name"] for r in children}
        assert names == {
            PROMETHEUS_RULE: f"{service}-slo",
            SERVICE_MONITOR: service,
            ANALYSIS_TEMPLATE: f"{service}-sli-gate",
            CONFIG_MAP: f"{service}-slo-dashboard",
        }
    [routing] = of_type(run, ALERTMANAGER_CONFIG)
    assert by_urn[routing.parent].type == "roadbike:slo:SloRouting"
    assert by_urn[by_urn[routing.parent].parent].type == "roadbike:platform:DeliveryPlatform"


def test_components_only_wrap_the_renderers() -> None:
    raw = stack_raw("dev")
    config = parse(raw)
    run = run_raw(raw, stack="dev")
    for renderer, resource_type in (
        (prometheus_rule, PROMETHEUS_RULE),
        (service_monitor, SERVICE_MONITOR),
        (analysis_template, ANALYSIS_TEMPLATE),
        (dashboard_config_map, CONFIG_MAP),
    ):
        recorded = {r.inputs["metadata"]["name"]: r.inputs for r in of_type(run, resource_type)}
        for service in config.services:
            manifest = renderer(config, service)
            inputs = recorded[manifest["metadata"]["name"]]
            assert inputs == manifest, renderer.__name__


def test_stack_outputs_list_rule_groups_and_alerts(runs: dict[str, ProgramRun]) -> None:
    config = parse(stack_raw("prod"))
    services = runs["prod"].outputs["services"]
    for service in config.services:
        assert services[service.name]["slo"] == slo_outputs(config, service)
    assert services["orders-api"]["slo"] == {
        "ruleGroups": [
            "slo-sli-orders-api-availability",
            "slo-budget-orders-api-availability",
            "slo-alerts-orders-api-availability",
        ],
        "pageAlerts": ["OrdersApiAvailabilityBurnRatePage", "OrdersApiAvailabilitySliVanished"],
        "ticketAlerts": ["OrdersApiAvailabilityBurnRateTicket", "OrdersApiAvailabilitySliMetricsAbsent"],
    }
    assert "prometheus" not in runs["prod"].outputs


def test_prometheus_settings_reach_objects_and_outputs() -> None:
    raw = stack_raw("dev")
    raw["prometheus"] = {
        "ruleSelectorLabels": {"prometheus": "platform"},
        "url": "https://prometheus.dev.acme.internal",
    }
    raw["services"][0]["metricsPort"] = "metrics"
    raw["services"][0]["metricsPath"] = "/internal/metrics"
    run = run_raw(raw, stack="dev")
    assert run.outputs["prometheus"] == {"url": "https://prometheus.dev.acme.internal"}
    for resource_type in (PROMETHEUS_RULE, SERVICE_MONITOR, ALERTMANAGER_CONFIG):
        for resource in of_type(run, resource_type):
            labels = resource.inputs["metadata"]["labels"]
            assert labels["prometheus"] == "platform" and "release" not in labels
    monitor = next(
        r for r in of_type(run, SERVICE_MONITOR) if r.inputs["metadata"]["name"] == "go-http-server"
    )
    assert monitor.inputs["spec"]["endpoints"][0] == {
        "port": "metrics",
        "path": "/internal/metrics",
        "interval": "30s",
        "scheme": "http",
    }
    assert monitor.inputs["spec"]["selector"] == {"matchLabels": {"app": "go-http-server"}}
    assert monitor.inputs["spec"]["jobLabel"] == "app"


def test_service_without_slos_gets_only_its_monitor() -> None:
    raw = stack_raw("dev")
    raw["services"][1]["slos"] = []
    run = run_raw(raw, stack="dev")
    component = next(
        r for r in run.resources if r.type == "roadbike:slo:SloAlerts" and r.name == "orders-api-slo"
    )
    assert [r.type for r in run.resources if r.parent == component.urn] == [SERVICE_MONITOR]
    assert run.outputs["services"]["orders-api"]["slo"] == {
        "ruleGroups": [],
        "pageAlerts": [],
        "ticketAlerts": [],
    }


@pytest.mark.parametrize("stack", STACKS)
def test_alertmanager_config_validates_against_the_upstream_schema(
    runs: dict[str, ProgramRun], stack: str
) -> None:
    [routing] = of_type(runs[stack], ALERTMANAGER_CONFIG)
    assert crd_errors(as_applied(routing)) == []
