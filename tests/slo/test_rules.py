"""The SLO renderers without Pulumi: thresholds, windows, names, guards, routing, the SLI gate."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from components.config import ConfigError, Slo
from components.naming import service_names
from components.slo.alertmanager import alertmanager_config, alertmanager_config_resource
from components.slo.analysis import analysis_template
from components.slo.burn_rates import PAGE, TICKET, TIERS, WINDOWS, burn_threshold, error_budget, go_float
from components.slo.files import slo_artifacts
from components.slo.promtool_tests import example_labels, promtool_tests, synthetic_sli
from components.slo.rules import rule_groups, sli_queries, slo_outputs
from components.slo.selectors import Matcher, parse_selector
from tests.helpers import parse, stack_raw


def slo(objective: float, sli: dict[str, Any] | None = None) -> Slo:
    return Slo.model_validate(
        {
            "name": "availability",
            "objective": objective,
            "sli": sli or {"type": "ratio", "errors": "e", "total": "t"},
        }
    )


def thresholds(objective: float) -> list[str]:
    return [str(burn_threshold(slo(objective), tier).normalize()) for tier in TIERS]


# SRE workbook, "Alerting on SLOs": threshold = burn rate x (1 - SLO), page 14.4x/6x, ticket 3x/1x.
@pytest.mark.parametrize(
    ("objective", "expected"),
    [
        (99.5, ["0.072", "0.03", "0.015", "0.005"]),
        (99.2, ["0.1152", "0.048", "0.024", "0.008"]),
        (95, ["0.72", "0.3", "0.15", "0.05"]),
        (99.9, ["0.0144", "0.006", "0.003", "0.001"]),
        (99.99, ["0.00144", "0.0006", "0.0003", "0.0001"]),
    ],
)
def test_thresholds_of_each_tier_match_the_workbook(objective: float, expected: list[str]) -> None:
    assert thresholds(objective) == expected


def test_tiers_are_the_workbook_windows_and_budget_shares() -> None:
    table = [(t.severity, t.long, t.short, str(t.burn), str(t.budget_consumed.normalize())) for t in TIERS]
    assert table == [
        (PAGE, "1h", "5m", "14.4", "0.02"),
        (PAGE, "6h", "30m", "6", "0.05"),
        (TICKET, "1d", "2h", "3", "0.1"),
        (TICKET, "3d", "6h", "1", "0.1"),
    ]
    assert error_budget(slo(99.5)) == Decimal("0.005")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.3, "0.3"),
        (1.0, "1"),
        (2.5, "2.5"),
        (0.005, "0.005"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (10.0, "10"),
        (100000.0, "100000"),
        (1000000.0, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (0.1 + 0.2, "0.30000000000000004"),
        (float("inf"), "+Inf"),
    ],
)
def test_le_is_written_as_go_writes_it(value: float, text: str) -> None:
    assert go_float(value) == text


def dev() -> Any:
    return parse(stack_raw("dev"))


def rules_of(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for group in groups for rule in group["rules"]]


def test_recording_rules_cover_every_alert_window_and_the_budget() -> None:
    config = dev()
    groups = rule_groups(config, config.services[0])
    records = {r["record"] for r in rules_of(groups) if "record" in r}
    windows_needed = {w for tier in TIERS for w in (tier.long, tier.short)}
    assert set(WINDOWS) == windows_needed
    assert {f"slo:sli_error:ratio_rate{w}" for w in windows_needed} <= records
    assert {
        "slo:sli_error:ratio_rate30d",
        "slo:error_budget_remaining:ratio",
        "slo:objective:ratio",
    } <= records
    alert_exprs = " ".join(r["expr"] for r in rules_of(groups) if "alert" in r)
    for record in re.findall(r"slo:[a-z_]+:[a-z_0-9]+", alert_exprs):
        assert record in records


def test_every_error_ratio_is_guarded_against_zero_traffic() -> None:
    config = dev()
    for service in config.services:
        for rule in rules_of(rule_groups(config, service)):
            if rule.get("record", "").startswith("slo:sli_error:ratio_rate"):
                assert rule["expr"].rstrip().endswith("> 0)"), rule["expr"]


def test_ratio_sli_is_scoped_to_the_service_and_counts_missing_errors_as_zero() -> None:
    config = dev()
    [five_minutes, *_] = rules_of(rule_groups(config, config.services[0]))
    assert five_minutes["expr"] == (
        '(sum(rate(http_requests_total{code=~"5..",job="go-http-server",namespace="delivery-dev"}[5m]))'
        " or vector(0))\n/\n"
        '(sum(rate(http_requests_total{job="go-http-server",namespace="delivery-dev"}[5m])) > 0)'
    )
    assert five_minutes["labels"] == {
        "namespace": "delivery-dev",
        "service": "go-http-server",
        "slo": "availability",
    }


@pytest.mark.parametrize(
    ("threshold", "le"), [(0.3, 'le="0.3"'), (1, 'le="1"'), (2.5, 'le="2.5"'), (0.25, 'le="0.25"')]
)
def test_latency_sli_reads_the_threshold_bucket(threshold: float, le: str) -> None:
    raw = stack_raw("dev")
    raw["services"][0]["slos"][1]["sli"]["thresholdSeconds"] = threshold
    config = parse(raw)
    latency = [g for g in rule_groups(config, config.services[0]) if g["name"].endswith("-latency")]
    expr = latency[0]["rules"][0]["expr"]
    assert (
        f'http_request_duration_seconds_bucket{{job="go-http-server",namespace="delivery-dev",{le}}}[5m]'
        in expr
    )
    assert "http_request_duration_seconds_count{" in expr
    absent = [r for r in latency[1]["rules"] if r["alert"].endswith("SliMetricsAbsent")]
    assert le in absent[0]["expr"]


def test_alerts_carry_severity_service_slo_and_annotations() -> None:
    config = dev()
    for service in config.services:
        for rule in rules_of(rule_groups(config, service)):
            if "alert" not in rule:
                continue
            assert rule["labels"]["severity"] in (PAGE, TICKET)
            assert rule["labels"]["service"] == service.name
            assert rule["labels"]["namespace"] == "delivery-dev"
            assert rule["labels"]["slo"] in {s.name for s in service.slos}
            assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
            assert rule["annotations"]["runbook_url"].startswith(
                f"https://github.com/acme/{service.repository}/"
            )


def test_page_alert_is_the_workbook_expression() -> None:
    config = dev()
    [page_fast, page_slow] = [
        r
        for r in rules_of(rule_groups(config, config.services[1]))
        if r.get("labels", {}).get("severity") == PAGE
    ]
    selector = '{namespace="delivery-dev",service="orders-api",slo="availability"}'
    assert page_fast["expr"] == (
        f"slo:sli_error:ratio_rate1h{selector} > 0.0144\nand\nslo:sli_error:ratio_rate5m{selector} > 0.0144"
    )
    assert page_slow["labels"]["long_window"] == "6h" and "> 0.006" in page_slow["expr"]
    assert "for" not in page_fast  # the short window already makes it reset quickly
    assert "14.4x" in page_fast["annotations"]["summary"]


def test_names_follow_one_scheme_for_all_services() -> None:
    config = dev()
    for service in config.services:
        outputs = slo_outputs(config, service)
        camel = "".join(p.capitalize() for p in service.name.split("-"))
        for slo_ in service.slos:
            assert f"slo-sli-{service.name}-{slo_.name}" in outputs["ruleGroups"]
            assert f"slo-alerts-{service.name}-{slo_.name}" in outputs["ruleGroups"]
            assert f"{camel}{slo_.name.capitalize()}BurnRatePage" in outputs["pageAlerts"]
            assert f"{camel}{slo_.name.capitalize()}BurnRateTicket" in outputs["ticketAlerts"]
            assert f"{camel}{slo_.name.capitalize()}SliMetricsAbsent" in outputs["ticketAlerts"]
        records = {r["record"] for r in rules_of(rule_groups(config, service)) if "record" in r}
        assert all(re.fullmatch(r"slo:[a-z_]+:[a-z_]+(rate)?[0-9a-z]*", r) for r in records)


def test_outputs_are_the_groups_of_the_rules() -> None:
    config = dev()
    service = config.services[0]
    assert slo_outputs(config, service)["ruleGroups"] == [g["name"] for g in rule_groups(config, service)]


def test_runbook_base_url_is_used_when_configured() -> None:
    raw = stack_raw("dev")
    raw["prometheus"] = {"runbookBaseUrl": "https://runbooks.acme.internal/slo/"}
    config = parse(raw)
    urls = {
        r["annotations"]["runbook_url"]
        for r in rules_of(rule_groups(config, config.services[0]))
        if "alert" in r
    }
    assert urls == {
        "https://runbooks.acme.internal/slo/go-http-server/availability",
        "https://runbooks.acme.internal/slo/go-http-server/latency",
    }


def test_rendering_is_deterministic() -> None:
    assert slo_artifacts(dev()) == slo_artifacts(dev())


def test_artifacts_are_the_rules_tests_and_alertmanager_config() -> None:
    files = slo_artifacts(dev())
    assert sorted(files) == [
        "prometheus/alertmanager.yml",
        "prometheus/go-http-server.rules.yml",
        "prometheus/go-http-server.test.yml",
        "prometheus/orders-api.rules.yml",
        "prometheus/orders-api.test.yml",
    ]


def test_promtool_tests_cover_each_scenario_per_slo() -> None:
    config = dev()
    document = promtool_tests(config, config.services[0])
    assert document["rule_files"] == ["go-http-server.rules.yml"]
    names = [t["name"] for t in document["tests"]]
    assert names == [
        "availability: a 36x burn pages within 24m",
        "availability: a 0.5x burn fires nothing",
        "availability: a 2x burn opens a ticket and does not page",
        "availability: zero traffic fires nothing and records no NaN",
        "availability: absent metrics fire GoHttpServerAvailabilitySliMetricsAbsent",
        "latency: a 20x burn pages within 43.2m",  # 95% allows at most 20x: every request slow
        "latency: a 0.5x burn fires nothing",
        "latency: a 2x burn opens a ticket and does not page",
        "latency: zero traffic fires nothing and records no NaN",
        "latency: absent metrics fire GoHttpServerLatencySliMetricsAbsent",
    ]


def test_alertmanager_routes_pages_and_tickets_apart_and_inhibits_tickets() -> None:
    document = alertmanager_config(dev())
    routes = {r["matchers"][0]: r["receiver"] for r in document["route"]["routes"]}
    assert routes == {'severity="page"': "slo-page", 'severity="ticket"': "slo-ticket"}
    [inhibit] = document["inhibit_rules"]
    assert inhibit["source_matchers"] == ['severity="page"']
    assert inhibit["target_matchers"] == ['severity="ticket"']
    assert inhibit["equal"] == ["namespace", "service", "slo"]


def test_alertmanager_config_resource_has_the_same_routing() -> None:
    plain = alertmanager_config(dev())
    resource = alertmanager_config_resource(dev())
    assert resource["metadata"]["namespace"] == "delivery-dev"
    assert resource["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    spec = resource["spec"]
    assert [r["name"] for r in spec["receivers"]] == [r["name"] for r in plain["receivers"]]
    assert [(r["receiver"], r["matchers"][0]["value"]) for r in spec["route"]["routes"]] == [
        (r["receiver"], r["matchers"][0].split('"')[1]) for r in plain["route"]["routes"]
    ]
    assert spec["inhibitRules"][0]["equal"] == plain["inhibit_rules"][0]["equal"]


def test_sli_gate_is_nan_safe_and_uses_the_objectives() -> None:
    config = dev()
    template = analysis_template(config, config.services[0])
    availability, latency = template["spec"]["metrics"]
    for metric in (availability, latency):
        assert metric["successCondition"].startswith("len(result) > 0 && !isNaN(result[0])")
        assert metric["failureCondition"].startswith("len(result) > 0 && !isNaN(result[0])")
    assert availability["successCondition"].endswith(">= 0.995")
    assert latency["successCondition"].endswith("<= 0.3")
    assert latency["provider"]["prometheus"]["query"].startswith("histogram_quantile(0.95, ")
    assert "> 0)" in availability["provider"]["prometheus"]["query"]
    args = {a["name"]: a["value"] for a in template["spec"]["args"]}
    assert args == {
        "prometheus-address": "http://prometheus-operated.monitoring.svc:9090",
        "pod-template-hash": ".*",
    }


def test_sli_gate_uses_the_configured_prometheus_url() -> None:
    raw = stack_raw("dev")
    raw["prometheus"] = {"url": "https://prometheus.dev.acme.internal"}
    config = parse(raw)
    args = analysis_template(config, config.services[0])["spec"]["args"]
    assert args[0] == {"name": "prometheus-address", "value": "https://prometheus.dev.acme.internal"}


def test_selectors_parse_and_keep_user_matchers() -> None:
    selector = parse_selector("""x_total{code=~"5..", path!='/a"b', job="mine"}""")
    assert selector.metric == "x_total"
    assert selector.matchers == (
        Matcher("code", "=~", "5.."),
        Matcher("path", "!=", '/a"b'),
        Matcher("job", "=", "mine"),
    )
    scoped = selector.with_labels({"job": "svc", "namespace": "ns"})
    assert scoped.render() == 'x_total{code=~"5..",path!="/a\\"b",job="mine",namespace="ns"}'


@pytest.mark.parametrize(
    ("errors", "total"),
    [
        ('http_requests_total{code=~"5.."}', "http_requests_total"),
        ('http_requests_total{code=~"5..|429"}', 'http_requests_total{handler="/api"}'),
        ('grpc_server_handled_total{grpc_code!="OK"}', "grpc_server_handled_total"),
        ('grpc_server_handled_total{grpc_code=~"Unavailable|Internal"}', "grpc_server_handled_total"),
        ("http_errors_total", "http_requests_total"),
    ],
)
def test_synthetic_series_match_the_sli_selectors(errors: str, total: str) -> None:
    config = dev()
    objective = slo(99.5, {"type": "ratio", "errors": errors, "total": total})
    queries = sli_queries(service_names(config, config.services[0]), objective)
    series = dict(synthetic_sli(queries).series)
    parsed = {text: parse_selector(text) for text in series}
    assert queries.bad is not None
    for text, counts in series.items():
        labels = {m.name: m.value for m in parsed[text].matchers}
        selects = [s for s in (queries.bad, queries.total) if s.metric == parsed[text].metric]
        matched = [all(m.matches(labels.get(m.name, "")) for m in s.matchers) for s in selects]
        if counts == "bad":
            assert matched[0], text
        else:
            assert matched[-1] and (queries.bad.metric != queries.total.metric or not matched[0]), text


def test_sli_without_synthetic_series_keeps_only_the_absent_test() -> None:
    raw = stack_raw("dev")
    raw["services"][1]["slos"][0]["sli"] = {"type": "ratio", "errors": 'x{a="1"}', "total": 'x{a="2"}'}
    config = parse(raw)
    [only] = promtool_tests(config, config.services[1])["tests"]
    assert only["name"] == "availability: absent metrics fire OrdersApiAvailabilitySliMetricsAbsent"


def test_example_labels_refuses_impossible_matchers() -> None:
    assert example_labels([Matcher("a", "=", "x"), Matcher("a", "!=", "x")]) is None
    assert example_labels([Matcher("a", "=~", "[45]0[0-9]")]) == {"a": "400"}


@pytest.mark.parametrize(
    ("sli", "message"),
    [
        ({"type": "ratio", "errors": "x{code=5}", "total": "x"}, "is not a PromQL selector"),
        ({"type": "ratio", "errors": "x", "total": "x"}, "errors and total are the same selector"),
        ({"type": "latency", "histogram": "h_bucket", "thresholdSeconds": 0.3}, "without _bucket"),
    ],
)
def test_bad_sli_is_refused_with_its_key_path(sli: dict[str, Any], message: str) -> None:
    raw = stack_raw("dev")
    raw["services"][0]["slos"][0]["sli"] = sli
    with pytest.raises(ConfigError) as error:
        parse(raw)
    [line] = error.value.problems
    assert "roadbike:services[0].slos[0].sli" in line and message in line


def test_prometheus_config_is_checked() -> None:
    raw = stack_raw("dev")
    raw["prometheus"] = {"ruleSelectorLabels": {"release": "not valid!"}, "url": "prometheus:9090"}
    raw["services"][0]["metricsPort"] = "metrics-port-too-long"
    with pytest.raises(ConfigError) as error:
        parse(raw)
    text = "\n".join(error.value.problems)
    assert "roadbike:prometheus.ruleSelectorLabels" in text
    assert "roadbike:prometheus.url" in text
    assert "roadbike:services[0].metricsPort" in text
