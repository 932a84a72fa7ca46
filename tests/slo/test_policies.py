"""SLO policies through the real pack over the Analyzer protocol: one passing and one violating case each."""

from __future__ import annotations

import copy
from typing import Any

from components.slo.rules import prometheus_rule
from roadbike.analyzer import PolicyPackProcess
from tests.helpers import analyze_resources, parse, resource, run_raw, stack_raw, violated

PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
DELIVERY_CHAIN = "roadbike:chain:DeliveryChain"
SLO_POLICIES = (
    "alert-severity-summary-runbook",
    "slo-objective-leaves-error-budget",
    "prometheus-rule-under-size-limit",
    "service-has-slo-alerts",
    "slo-period-within-retention",
)


def rendered(service_index: int = 1) -> dict[str, Any]:
    config = parse(stack_raw("dev"))
    return prometheus_rule(config, config.services[service_index])


def rule_resource(manifest: dict[str, Any], name: str = "orders-api-slo-rules") -> Any:
    return resource(PROMETHEUS_RULE, name, manifest)


def chain(service: str) -> Any:
    return resource(DELIVERY_CHAIN, service, {})


def alerts(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for g in manifest["spec"]["groups"] for r in g["rules"] if "alert" in r]


def test_rendered_rules_pass_every_slo_policy(pack: PolicyPackProcess) -> None:
    result = analyze_resources(pack, [chain("orders-api"), rule_resource(rendered())])
    for policy in SLO_POLICIES:
        assert violated(result, policy) == [], policy


def test_alert_without_severity_or_runbook_violates(pack: PolicyPackProcess) -> None:
    manifest = rendered()
    first, second, *_ = alerts(manifest)
    del first["labels"]["severity"]
    del second["annotations"]["runbook_url"]
    messages = violated(analyze_resources(pack, [rule_resource(manifest)]), "alert-severity-summary-runbook")
    [no_runbook, no_severity] = sorted(messages, key=lambda m: "label severity" in m)
    assert "OrdersApiAvailabilityBurnRatePage" in no_severity and "label severity" in no_severity
    assert "annotation runbook_url" in no_runbook and "delivery-dev/orders-api-slo" in no_runbook


def objective_rule(manifest: dict[str, Any]) -> dict[str, Any]:
    return next(
        r for g in manifest["spec"]["groups"] for r in g["rules"] if r.get("record") == "slo:objective:ratio"
    )


def test_objective_without_error_budget_violates(pack: PolicyPackProcess) -> None:
    manifest = rendered()
    objective_rule(manifest)["expr"] = "vector(1)"
    [message] = violated(
        analyze_resources(pack, [rule_resource(manifest)]), "slo-objective-leaves-error-budget"
    )
    assert "'availability'" in message and "leaves no error budget" in message


def test_objective_whose_page_cannot_fire_violates_end_to_end(pack: PolicyPackProcess) -> None:
    raw = stack_raw("dev")
    raw["services"][1]["slos"][0]["objective"] = 90  # 14.4 x 10% > 100%: the page can never fire
    result = analyze_resources(pack, run_raw(raw, stack="dev").resources)
    [message] = violated(result, "slo-objective-leaves-error-budget")
    assert "'orders-api'" in message and "can never fire" in message and "93.06%" in message


def test_rule_over_512_kib_violates(pack: PolicyPackProcess) -> None:
    manifest = rendered()
    group = manifest["spec"]["groups"][0]
    group["rules"] = [copy.deepcopy(group["rules"][0]) for _ in range(3000)]
    [message] = violated(
        analyze_resources(pack, [rule_resource(manifest)]), "prometheus-rule-under-size-limit"
    )
    assert "512 KiB" in message and "delivery-dev/orders-api-slo" in message


def test_service_without_slo_violates(pack: PolicyPackProcess) -> None:
    result = analyze_resources(pack, [chain("orders-api"), chain("billing"), rule_resource(rendered())])
    [message] = violated(result, "service-has-slo-alerts")
    assert "'billing'" in message
    [violation] = [v for v in result.violations if v.policy == "service-has-slo-alerts"]
    assert violation.urn.endswith("::billing") and violation.enforcement_level == "mandatory"


def test_service_with_only_page_alerts_violates(pack: PolicyPackProcess) -> None:
    manifest = rendered()
    for group in manifest["spec"]["groups"]:
        group["rules"] = [r for r in group["rules"] if r.get("labels", {}).get("severity") != "ticket"]
    result = analyze_resources(pack, [chain("orders-api"), rule_resource(manifest)])
    [message] = violated(result, "service-has-slo-alerts")
    assert "'orders-api'" in message and "page and a ticket" in message


def test_committed_dev_stack_passes_the_slo_policies(pack: PolicyPackProcess) -> None:
    result = analyze_resources(pack, run_raw(stack_raw("dev"), stack="dev").resources)
    for policy in SLO_POLICIES:
        assert violated(result, policy) == [], policy


def with_retention(retention: str) -> list[Any]:
    raw = stack_raw("dev")
    raw["prometheus"] = {"retention": retention}
    raw["services"][1]["slos"][0]["period"] = "28d"
    return run_raw(raw, stack="dev").resources


def test_retention_that_holds_the_period_passes(pack: PolicyPackProcess) -> None:
    result = analyze_resources(pack, with_retention("4w2d"))
    assert violated(result, "slo-period-within-retention") == []


def test_retention_shorter_than_the_period_warns(pack: PolicyPackProcess) -> None:
    result = analyze_resources(pack, with_retention("29d"))  # holds orders-api's 28d, not the 30d ones
    messages = violated(result, "slo-period-within-retention")
    assert sorted(m.split(" has ")[0] for m in messages) == [
        "SLO 'availability' of service 'go-http-server'",
        "SLO 'latency' of service 'go-http-server'",
    ]
    assert all("30d period but Prometheus keeps 29d" in m for m in messages)
    levels = {v.enforcement_level for v in result.violations if v.policy == "slo-period-within-retention"}
    assert levels == {"advisory"}
