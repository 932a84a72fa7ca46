"""The SLO renderers without Pulumi: thresholds, windows, names, guards, routing, the SLI gate."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from components.config import ConfigError, Slo
from components.naming import service_names
from components.slo.alertmanager import alertmanager_config, alertmanager_config_resource
from components.slo.analysis import analysis_template
from components.slo.buckets import threshold_le_regex
from components.slo.burn_rates import PAGE, TICKET, TIERS, WINDOWS, burn_threshold, error_budget, go_float
from components.slo.files import slo_artifacts
from components.slo.promtool_tests import (
    example_labels,
    le_spellings,
    long_promtool_tests,
    promtool_tests,
    synthetic_sli,
)
from components.slo.rules import rule_groups, sli_queries, slo_outputs
from components.slo.selectors import Matcher, parse_selector
from tests.helpers import parse, roadbike, stack_raw, write_stack


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
    table = [(t.severity, t.long, t.short, str(t.burn("30d")), str(t.budget_share)) for t in TIERS]
    assert table == [
        (PAGE, "1h", "5m", "14.4", "0.02"),
        (PAGE, "6h", "30m", "6", "0.05"),
        (TICKET, "1d", "2h", "3", "0.1"),
        (TICKET, "3d", "6h", "1", "0.1"),
    ]
    assert error_budget(slo(99.5)) == Decimal("0.005")


def test_a_28_day_period_scales_the_burn_rates_as_sloth_does() -> None:
    # Sloth's internal/alert/windows/google-28d.yaml: the same windows and budget shares over 672h.
    assert [str(t.burn("28d")) for t in TIERS] == ["13.44", "5.6", "2.8", "0.933333"]


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
        # Sloth's labels, for the dashboards made for its series
        "sloth_id": "go-http-server-availability",
        "sloth_service": "go-http-server",
        "sloth_slo": "availability",
        "sloth_window": "5m",
    }


@pytest.mark.parametrize(
    ("threshold", "spellings", "others"),
    [
        (
            0.3,
            ["0.3", "0.30", ".3", "0.30000000000000004", "0.29999999999999993"],
            ["0.03", "3", "0.35", "+Inf"],
        ),
        (1, ["1", "1.0", "1.00", "1.0000000000000002", "0.9999999999999999"], ["10", "0.1", "1.5", "11"]),
        (2.5, ["2.5", "2.50", "2.5000000000000004"], ["25", "0.25", "2.05"]),
        (0.25, ["0.25", "0.250"], ["0.025", "0.2", "0.5", "2.5"]),
        (0.0005, ["0.0005", "0.00050"], ["0.005", "0.00005"]),
    ],
)
def test_latency_sli_reads_every_spelling_of_the_threshold_bucket(
    threshold: float, spellings: list[str], others: list[str]
) -> None:
    raw = stack_raw("dev")
    raw["services"][0]["slos"][1]["sli"]["thresholdSeconds"] = threshold
    config = parse(raw)
    latency = [g for g in rule_groups(config, config.services[0]) if g["name"].endswith("-latency")]
    expr = latency[0]["rules"][0]["expr"]
    regex = threshold_le_regex(threshold)
    bucket = parse_selector(
        "http_request_duration_seconds_bucket{"
        + Matcher("le", "=~", regex).render()
        + ',job="go-http-server",namespace="delivery-dev"}'
    )
    assert f'le=~"{regex.replace(chr(92), chr(92) * 2)}"' in expr
    assert "http_request_duration_seconds_count{" in expr
    le = next(m for m in bucket.matchers if m.name == "le")
    assert [s for s in spellings if not le.matches(s)] == []
    assert [s for s in others if le.matches(s)] == []


def test_a_series_without_the_bucket_is_left_out_not_counted_slow() -> None:
    config = dev()
    latency = next(
        g for g in rule_groups(config, config.services[0]) if g["name"] == "slo-sli-go-http-server-latency"
    )
    expr = latency["rules"][0]["expr"]
    numerator, denominator = expr.split("\n/\n")
    # errors per series (count - bucket): a series without the bucket has no match and drops out
    assert (
        numerator.startswith("sum(rate(http_request_duration_seconds_count{")
        and " - sum without (le) (" in numerator
    )
    # requests only of the series that have the bucket
    assert " and sum without (le) (rate(http_request_duration_seconds_bucket{" in denominator


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


def test_page_alert_is_the_workbook_expression_over_the_data_the_window_holds() -> None:
    config = dev()
    [page_fast, page_slow, vanished] = [
        r
        for r in rules_of(rule_groups(config, config.services[1]))
        if r.get("labels", {}).get("severity") == PAGE
    ]
    selector = '{namespace="delivery-dev",service="orders-api",slo="availability"}'
    assert page_fast["expr"] == (
        f"slo:sli_error:ratio_rate1h{selector}\n"
        f"* on (namespace, service, slo) slo:sli_coverage:ratio1h{selector}\n"
        "* 60 / 43200 / 0.001 > 0.02\n"
        f"and on (namespace, service, slo)\nslo:sli_error:ratio_rate5m{selector} > 0.0144"
    )
    assert page_slow["labels"]["long_window"] == "6h" and "> 0.006" in page_slow["expr"]
    assert "* 360 / 43200 / 0.001 > 0.05\n" in page_slow["expr"]
    assert "for" not in page_fast  # the short window already makes it reset quickly
    assert "14.4x" in page_fast["annotations"]["summary"]
    assert page_fast["annotations"]["description"].startswith("{{ $value | humanizePercentage }} of the 0.1%")
    assert vanished["alert"] == "OrdersApiAvailabilitySliVanished" and vanished["for"] == "5m"
    assert vanished["expr"] == (
        'absent(grpc_server_handled_total{job="orders-api",namespace="delivery-dev"})\n'
        f"and on ()\nslo:sli_coverage:ratio1d{selector} > 0"
    )


def test_the_period_figures_read_only_raw_counters() -> None:
    """No recorded series in the 30-day ratio: it holds the whole period from the first deploy on, and a
    renamed SLO keeps its history."""
    config = dev()
    for service in config.services:
        for group in rule_groups(config, service):
            if not group["name"].startswith("slo-budget-"):
                continue
            records = {r["record"]: r["expr"] for r in group["rules"]}
            for record in ("slo:sli_error:ratio_rate30d", "slo:sli_coverage:ratio30d"):
                assert "slo:" not in records[record], records[record]
                assert "[30d" in records[record]


def test_min_events_guard_and_28_day_period_reach_the_alerts() -> None:
    raw = stack_raw("dev")
    raw["services"][1]["slos"][0].update({"minEvents": 500, "period": "28d"})
    config = parse(raw)
    groups = rule_groups(config, config.services[1])
    pages = [r for r in rules_of(groups) if r.get("alert") == "OrdersApiAvailabilityBurnRatePage"]
    assert pages[0]["expr"].endswith(
        'and on ()\nsum(increase(grpc_server_handled_total{job="orders-api",namespace="delivery-dev"}[1h])) >= 500'
    )
    assert "* 60 / 40320 / 0.001 > 0.02" in pages[0]["expr"]
    assert "> 0.01344" in pages[0]["expr"]  # 13.44x over 28 days
    assert "slo:sli_error:ratio_rate28d" in {r.get("record") for r in rules_of(groups)}


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
        assert all(re.fullmatch(r"slo:[a-z_]+:[a-z_]+(rate)?[0-9a-z]*|sloth_slo_info", r) for r in records)


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
        "prometheus/go-http-server.long.test.yml",
        "prometheus/go-http-server.rules.yml",
        "prometheus/go-http-server.test.yml",
        "prometheus/orders-api.long.test.yml",
        "prometheus/orders-api.rules.yml",
        "prometheus/orders-api.test.yml",
    ]


def scenarios(tests: list[dict[str, Any]]) -> list[list[str]]:
    """The scenarios of each test group (a group runs the same scenario of SLOs whose SLIs are apart)."""
    return [t["name"].split(" | ") for t in tests]


def test_promtool_tests_cover_each_scenario_per_slo() -> None:
    config = dev()
    document = promtool_tests(config, config.services[0])
    assert document["rule_files"] == ["go-http-server.rules.yml"]
    assert scenarios(document["tests"]) == [
        ["availability: a 36x burn pages within 24m", "latency: a 20x burn pages within 43.2m"],
        [
            "availability: a 0.5x burn fires nothing and leaves 99% of the budget",
            "latency: a 0.5x burn fires nothing and leaves 99% of the budget",
        ],
        [
            "availability: a 2x burn on 2h of fresh data opens no ticket",
            "latency: a 2x burn on 2h of fresh data opens no ticket",
        ],
        [
            "availability: zero traffic fires nothing and records no NaN",
            "latency: zero traffic fires nothing and records no NaN",
        ],
        [
            "availability: targets that vanish page GoHttpServerAvailabilitySliVanished within 6m",
            "latency: targets that vanish page GoHttpServerLatencySliVanished within 6m",
        ],
        [
            "latency: buckets spelled 0.29999999999999993, 0.3, 0.30, 0.30000000000000004 all count; a series "
            "without the bucket is left out and fires GoHttpServerLatencySliBucketMissing"
        ],
        [
            "availability: metrics that never existed fire GoHttpServerAvailabilitySliMetricsAbsent and page "
            "nothing",
            "latency: metrics that never existed fire GoHttpServerLatencySliMetricsAbsent and page nothing",
        ],
    ]
    long = long_promtool_tests(config, config.services[0])
    assert long["evaluation_interval"] == "5m"
    assert scenarios(long["tests"]) == [
        [
            "availability: a 2x burn opens the 3d ticket once 50% of the window holds data",
            "latency: a 2x burn opens the 3d ticket once 50% of the window holds data",
        ]
    ]


def test_slos_reading_the_same_metric_get_test_groups_of_their_own() -> None:
    """Series of one SLO would reach the rules of another that reads the same metric: their scenarios stay
    apart, while an SLO on other metrics shares the groups of the first."""
    raw = stack_raw("dev")
    availability = raw["services"][0]["slos"][0]
    raw["services"][0]["slos"].insert(1, {**availability, "name": "strict", "objective": 99.95})
    config = parse(raw)
    for document in (
        promtool_tests(config, config.services[0]),
        long_promtool_tests(config, config.services[0]),
    ):
        groups = [{name.split(":")[0] for name in group} for group in scenarios(document["tests"])]
        assert not [g for g in groups if {"availability", "strict"} <= g], groups
        assert {"availability", "latency"} in groups and {"strict"} in groups, groups
        inputs = [[s["series"] for s in t["input_series"]] for t in document["tests"]]
        assert all(len(series) == len(set(series)) for series in inputs), inputs


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        (0.3, ["0.29999999999999993", "0.3", "0.30", "0.30000000000000004"]),
        (1, ["0.9999999999999999", "1", "1.0", "1.00", "1.0000000000000002"]),
    ],
)
def test_bucket_spellings_of_the_generated_tests(threshold: float, expected: list[str]) -> None:
    assert le_spellings(threshold) == expected


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
    assert latency["successCondition"].endswith(">= 0.95")
    # the share of fast requests, from every spelling of the threshold bucket, not a quantile across pods
    latency_query = latency["provider"]["prometheus"]["query"]
    assert "histogram_quantile" not in latency_query
    assert f'le=~"{threshold_le_regex(0.3).replace(chr(92), chr(92) * 2)}"' in latency_query
    assert 'rollouts_pod_template_hash=~"{{args.pod-template-hash}}"' in latency_query
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
    assert only["name"] == (
        "availability: metrics that never existed fire OrdersApiAvailabilitySliMetricsAbsent and page nothing"
    )


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


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            ("sli", "thresholdSeconds"),
            0.30000000000000004,
            "0.30000000000000004 has more significant digits than a histogram bucket will have; "
            "the nearest bucket bound is 0.3",
        ),
        (
            ("sli", "thresholdSeconds"),
            0.1234567,
            "more significant digits than a histogram bucket will have; the nearest bucket bound is 0.123457",
        ),
        (("sli", "thresholdSeconds"), 0.00001, "1e-05 is outside 0.0001 to 100000 seconds"),
        (("sli", "thresholdSeconds"), 200000, "is outside 0.0001 to 100000 seconds"),
        (("period",), "7d", "Input should be '28d' or '30d' (got '7d')"),
        (("minEvents",), 0, "Input should be greater than or equal to 1 (got 0)"),
        (("minEvents",), 10**10, "Input should be less than or equal to 1000000000"),
    ],
)
def test_bad_slo_choice_is_refused_with_its_key_path(key: tuple[str, ...], value: Any, message: str) -> None:
    raw = stack_raw("dev")
    target = raw["services"][0]["slos"][1]
    for part in key[:-1]:
        target = target[part]
    target[key[-1]] = value
    with pytest.raises(ConfigError) as error:
        parse(raw)
    [line] = error.value.problems
    assert line.startswith(f"stacks/Pulumi.test.yaml: roadbike:services[0].slos[1].{'.'.join(key)}: ")
    assert message in line


def test_plan_refuses_a_threshold_no_bucket_has_with_exit_2(tmp_path: Path) -> None:
    raw = stack_raw("dev")
    raw["services"][0]["slos"][1]["sli"]["thresholdSeconds"] = 0.30000000000000004
    raw["prometheus"] = {"retention": "10 days"}
    stack_file = write_stack(tmp_path / "Pulumi.bad.yaml", raw)
    out = tmp_path / "out"
    result = roadbike("plan", "--stack", "bad", "--config-file", str(stack_file), "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert (
        "Pulumi.bad.yaml: roadbike:services[0].slos[1].sli.thresholdSeconds: 0.30000000000000004 has more "
        "significant digits than a histogram bucket will have; the nearest bucket bound is 0.3"
    ) in result.stderr
    assert (
        "Pulumi.bad.yaml: roadbike:prometheus.retention: '10 days' is not a Prometheus duration"
        in result.stderr
    )
    assert "Traceback" not in result.stderr + result.stdout
    assert not out.exists()


def test_sloth_metadata_rules_have_sloths_names_and_labels() -> None:
    """slok/sloth v0.16.0 examples/_gen/getting-started.yml: the meta recordings its dashboards read."""
    config = dev()
    [budget] = [g for g in rule_groups(config, config.services[1]) if g["name"].startswith("slo-budget-")]
    records = {r["record"]: r for r in budget["rules"]}
    sloth = {
        "sloth_id": "orders-api-availability",
        "sloth_service": "orders-api",
        "sloth_slo": "availability",
    }
    for name in (
        "slo:objective:ratio",
        "slo:error_budget:ratio",
        "slo:time_period:days",
        "slo:current_burn_rate:ratio",
        "slo:period_burn_rate:ratio",
        "slo:period_error_budget_remaining:ratio",
        "sloth_slo_info",
    ):
        assert sloth.items() <= records[name]["labels"].items(), name
    assert records["slo:time_period:days"]["expr"] == "vector(30)"
    assert records["slo:error_budget:ratio"]["expr"] == "vector(0.001)"
    assert records["sloth_slo_info"]["labels"]["sloth_objective"] == "99.9"
    assert records["slo:sli_error:ratio_rate30d"]["labels"]["sloth_window"] == "30d"
    alerts = [r for g in rule_groups(config, config.services[1]) for r in g["rules"] if "alert" in r]
    assert all(sloth.items() <= a["labels"].items() for a in alerts)


def test_no_user_regex_reaches_pythons_regex_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example series and every match the generator makes come from the regex's parse tree."""
    user = ["5..|429", "[^a-z].*", "(a|a)*c"]
    compile_ = re._compile  # type: ignore[attr-defined]

    def guarded(pattern: Any, flags: Any) -> Any:
        assert pattern not in user, f"{pattern!r} given to Python's re"
        return compile_(pattern, flags)

    monkeypatch.setattr(re, "_compile", guarded)
    labels = example_labels([Matcher("code", "=~", user[0]), Matcher("kind", "=~", user[1])])
    assert labels == {"code": "500", "kind": "0"}
    assert not Matcher("x", "=~", user[2]).matches("a" * 5000)  # no backtracking: polynomial, not 2^5000
    assert Matcher("x", "!~", user[0]).matches("200")
