"""SLO rules as code: a service's `slos` rendered as Prometheus recording and alerting rules.

Per SLO three groups: `slo-sli-<service>-<slo>` (error ratios for every window the alerts read and how
much of each long window holds data), `slo-budget-<service>-<slo>` (the period's error ratio and coverage
from the raw counters, the budget left) and `slo-alerts-<service>-<slo>` (multiwindow multi-burn-rate
alerts of the SRE workbook: page once 2% of the budget is spent in 1h or 5% in 6h, ticket at 10% in 1d or
3d, each with its short window; a page when the SLI's series vanish, tickets when they never existed or
a histogram lacks the threshold's bucket); per service, the PrometheusRule object that carries them.

One scheme for every service: recorded series are `slo:<what>:<aggregation>` keyed by the labels
`namespace`, `service` and `slo`; alerts are `<Service><Slo>` + BurnRatePage, BurnRateTicket, SliVanished,
SliMetricsAbsent or SliBucketMissing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from components.config import Service, Slo, StackConfig
from components.naming import ServiceNames, runbook_url, service_names
from components.slo.buckets import threshold_le_regex
from components.slo.burn_rates import (
    ABSENT_FOR,
    LONG_WINDOWS,
    PAGE,
    TICKET,
    TIERS,
    VANISHED_FOR,
    VANISHED_LOOKBACK,
    WINDOWS,
    BurnTier,
    burn_threshold,
    coverage_step,
    decimal_text,
    error_budget,
    go_float,
    objective_ratio,
    percent_text,
    window_minutes,
)
from components.slo.selectors import Matcher, Selector, parse_selector

SLO_LABELS = ("namespace", "service", "slo")


@dataclass(frozen=True)
class SliQueries:
    """PromQL of one SLI. `bad` counts failed requests (ratio); `good` is the threshold's bucket (latency).

    `fn` is `rate` for the alert windows and `increase` for the period, always over the raw series.
    """

    kind: str
    total: Selector
    bad: Selector | None = None
    good: Selector | None = None
    threshold: str = ""

    def _fast_by_series(self, fn: str, window: str) -> str:
        # One sum per series over every spelling of the bucket; `le` goes so that it matches its _count.
        assert self.good is not None
        return f"sum without (le) ({fn}({self.good.render()}[{window}]))"

    def _counted(self, fn: str, window: str) -> str:
        """Requests per series; for latency only the series that have the threshold's bucket."""
        requests = f"{fn}({self.total.render()}[{window}])"
        if self.good is None:
            return requests
        return f"({requests} and {self._fast_by_series(fn, window)})"

    def total_rate(self, window: str, fn: str = "rate") -> str:
        return f"sum({self._counted(fn, window)})"

    def error_rate(self, window: str, fn: str = "rate") -> str:
        if self.bad is not None:
            # No error series yet (a counter vector only has the codes seen so far) means no errors.
            return f"(sum({fn}({self.bad.render()}[{window}])) or vector(0))"
        # Per series, so that a series without the bucket drops out instead of counting as all slow.
        return f"sum({fn}({self.total.render()}[{window}]) - {self._fast_by_series(fn, window)})"

    def error_ratio(self, window: str, fn: str = "rate") -> str:
        # `> 0` drops the sample when there is no traffic: no NaN, nothing to alert on.
        return f"{self.error_rate(window, fn)}\n/\n({self.total_rate(window, fn)} > 0)"

    def coverage(self, window: str) -> str:
        """The share of `window` since the SLI's series first appeared in it (1 once they fill it).

        Measured from the raw series every 1/60 of the window, plus one step: the earliest step that sees
        them is at most one step late, and Prometheus 3's left-open ranges drop the window's first step.
        """
        step = coverage_step(window)
        seconds = window_minutes(window) * 60
        step_seconds = window_minutes(step) * 60
        return (
            f"clamp_max((time() - min_over_time(timestamp(count({self.total.render()}))[{window}:{step}])"
            f" + {step_seconds}) / {seconds}, 1)"
        )

    @property
    def bucket_missing(self) -> str | None:
        """Latency: the series of the histogram that have no bucket at the threshold."""
        if self.good is None:
            return None
        return f"{self.total.render()} unless ignoring (le) {self.good.render()}"


def sli_queries(names: ServiceNames, slo: Slo) -> SliQueries:
    """The SLI's selectors, scoped to the service's own series (`job` and `namespace`)."""
    scope = names.series_matchers
    sli = slo.sli
    if sli.type == "ratio":
        assert sli.errors is not None and sli.total is not None
        return SliQueries(
            kind="ratio",
            total=parse_selector(sli.total).with_labels(scope),
            bad=parse_selector(sli.errors).with_labels(scope),
        )
    assert sli.histogram is not None and sli.threshold_seconds is not None
    histogram = parse_selector(sli.histogram).with_labels(scope)
    bucket = histogram.renamed(histogram.metric + "_bucket").without_label("le")
    return SliQueries(
        kind="latency",
        total=histogram.renamed(histogram.metric + "_count"),
        good=replace(
            bucket,
            matchers=(*bucket.matchers, Matcher("le", "=~", threshold_le_regex(sli.threshold_seconds))),
        ),
        threshold=go_float(sli.threshold_seconds),
    )


def error_ratio_record(window: str) -> str:
    return f"slo:sli_error:ratio_rate{window}"


def coverage_record(window: str) -> str:
    return f"slo:sli_coverage:ratio{window}"


ERRORS_RATE_RECORD = "slo:sli_errors:rate5m"


REQUESTS_RATE_RECORD = "slo:sli_requests:rate5m"


OBJECTIVE_RECORD = "slo:objective:ratio"


BUDGET_REMAINING_RECORD = "slo:error_budget_remaining:ratio"


ALERT_SUFFIXES = {
    PAGE: "BurnRatePage",
    TICKET: "BurnRateTicket",
    "absent": "SliMetricsAbsent",
    "vanished": "SliVanished",
    "bucket": "SliBucketMissing",
}


def _camel(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_.]", text) if part)


def alert_name(names: ServiceNames, slo: Slo, kind: str) -> str:
    """`GoHttpServerAvailabilityBurnRatePage`, `...BurnRateTicket`, `...SliMetricsAbsent`, `...SliVanished`,
    `...SliBucketMissing`."""
    return f"{_camel(names.service)}{_camel(slo.name)}{ALERT_SUFFIXES[kind]}"


def sli_group_name(names: ServiceNames, slo: Slo) -> str:
    return f"slo-sli-{names.service}-{slo.name}"


def budget_group_name(names: ServiceNames, slo: Slo) -> str:
    return f"slo-budget-{names.service}-{slo.name}"


def alerts_group_name(names: ServiceNames, slo: Slo) -> str:
    return f"slo-alerts-{names.service}-{slo.name}"


def slo_labels(names: ServiceNames, slo: Slo) -> dict[str, str]:
    return {"namespace": names.namespace, "service": names.service, "slo": slo.name}


# Sloth's labels and metadata rules (slok/sloth v0.16.0, examples/_gen/getting-started.yml), so that the
# dashboards made for Sloth's `slo:*` series find these too.
SLOTH_SPEC = "prometheus/v1"


SLOTH_INFO_RECORD = "sloth_slo_info"


SLOTH_REMAINING_RECORD = "slo:period_error_budget_remaining:ratio"


def sloth_labels(names: ServiceNames, slo: Slo) -> dict[str, str]:
    return {"sloth_id": f"{names.service}-{slo.name}", "sloth_service": names.service, "sloth_slo": slo.name}


def rule_labels(names: ServiceNames, slo: Slo, window: str | None = None) -> dict[str, str]:
    """The labels of every rule of the SLO: ours, Sloth's, and Sloth's `sloth_window` on its error ratios."""
    labels = {**slo_labels(names, slo), **sloth_labels(names, slo)}
    return {**labels, "sloth_window": window} if window else labels


def slo_series(record: str, labels: dict[str, str]) -> str:
    return record + "{" + ",".join(f'{k}="{labels[k]}"' for k in SLO_LABELS) + "}"


def slo_runbook_url(config: StackConfig, service: Service, slo: Slo) -> str:
    return runbook_url(config, service, slo.name, f"slo-{slo.name}")


def _record(record: str, expr: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"record": record, "expr": expr, "labels": dict(labels)}


def sli_rules(names: ServiceNames, slo: Slo) -> list[dict[str, Any]]:
    """Error ratios for every alert window, the 5m rates and how much of each long window holds data."""
    queries = sli_queries(names, slo)
    labels = rule_labels(names, slo)
    rules = [
        _record(error_ratio_record(w), queries.error_ratio(w), rule_labels(names, slo, w)) for w in WINDOWS
    ]
    rules += [_record(coverage_record(w), queries.coverage(w), labels) for w in LONG_WINDOWS]
    rules += [
        _record(ERRORS_RATE_RECORD, queries.error_rate("5m"), labels),
        _record(REQUESTS_RATE_RECORD, queries.total_rate("5m"), labels),
    ]
    return rules


def sloth_metadata_rules(names: ServiceNames, slo: Slo) -> list[dict[str, Any]]:
    """Sloth's metadata rules with its names and labels: the objective, budget, period, burn rates, the
    budget left, and the `sloth_slo_info` metric its dashboards list SLOs by."""
    labels = rule_labels(names, slo)
    keys = slo_series("", labels)
    budget = decimal_text(error_budget(slo))
    objective = decimal_text(objective_ratio(slo) * 100)
    period_days = window_minutes(slo.period) // 1440
    info = {**labels, "sloth_mode": "roadbike", "sloth_objective": objective, "sloth_spec": SLOTH_SPEC}
    return [
        _record("slo:error_budget:ratio", f"vector({budget})", labels),
        _record("slo:time_period:days", f"vector({period_days})", labels),
        _record(
            "slo:current_burn_rate:ratio",
            f"{slo_series(error_ratio_record('5m'), labels)} / {budget}",
            labels,
        ),
        _record(
            "slo:period_burn_rate:ratio",
            f"{slo_series(error_ratio_record(slo.period), labels)}\n"
            f"* on (namespace, service, slo) {slo_series(coverage_record(slo.period), labels)}\n"
            f"/ {budget}",
            labels,
        ),
        _record(SLOTH_REMAINING_RECORD, f"{BUDGET_REMAINING_RECORD}{keys}", labels),
        _record(SLOTH_INFO_RECORD, "vector(1)", info),
    ]


def budget_rules(names: ServiceNames, slo: Slo) -> list[dict[str, Any]]:
    """The period's error ratio and coverage from the raw counters, the budget that is left, and Sloth's
    metadata.

    From the raw counters, not from recorded rates: the figures hold the whole period as soon as the rules
    are deployed, and survive a rename of the SLO. The remaining budget counts the errors seen against the
    budget of the requests the period would hold at the traffic seen: 1 - ratio x coverage / budget.
    """
    queries = sli_queries(names, slo)
    labels = rule_labels(names, slo)
    period = slo.period
    budget = decimal_text(error_budget(slo))
    return [
        _record(
            error_ratio_record(period),
            queries.error_ratio(period, fn="increase"),
            rule_labels(names, slo, period),
        ),
        _record(coverage_record(period), queries.coverage(period), labels),
        _record(OBJECTIVE_RECORD, f"vector({decimal_text(objective_ratio(slo))})", labels),
        _record(
            BUDGET_REMAINING_RECORD,
            f"1 - {slo_series(error_ratio_record(period), labels)}\n"
            f"* on (namespace, service, slo) {slo_series(coverage_record(period), labels)}\n"
            f"/ {budget}",
            labels,
        ),
        *sloth_metadata_rules(names, slo),
    ]


def _exhaustion(slo: Slo, tier: BurnTier) -> str:
    hours = Decimal(window_minutes(slo.period)) / 60 / tier.burn(slo.period)
    days, rest = divmod(hours, 24)
    rest = rest.quantize(Decimal("0.1")).normalize()
    return (f"{decimal_text(days)}d" if days else "") + (f"{decimal_text(rest)}h" if rest else "")


VALUE_TEMPLATE = "{{ $value | humanizePercentage }}"


def coverage_template(labels: dict[str, str], window: str) -> str:
    """A template that reads the window's coverage when the alert fires."""
    query = slo_series(coverage_record(window), labels).replace('"', '\\"')
    return f'{{{{ with query "{query}" }}}}{{{{ . | first | value | humanizePercentage }}}}{{{{ end }}}}'


def budget_spent(slo: Slo, tier: BurnTier, labels: dict[str, str]) -> str:
    """The share of the period's budget spent within the long window, counting only the data it holds."""
    return (
        f"{slo_series(error_ratio_record(tier.long), labels)}\n"
        f"* on (namespace, service, slo) {slo_series(coverage_record(tier.long), labels)}\n"
        f"* {window_minutes(tier.long)} / {window_minutes(slo.period)} / {decimal_text(error_budget(slo))}"
    )


def burn_description(
    names: ServiceNames, slo: Slo, tier: BurnTier, spent: str = VALUE_TEMPLATE, coverage: str | None = None
) -> str:
    """What a burn alert says: the budget spent (the alert's value) and how much of the window has data."""
    threshold = burn_threshold(slo, tier)
    burn = decimal_text(tier.burn(slo.period))
    covered = coverage_template(slo_labels(names, slo), tier.long) if coverage is None else coverage
    return (
        f"{spent} of the {percent_text(error_budget(slo))} error budget of the "
        f"{decimal_text(objective_ratio(slo) * 100)}% {slo.name} objective of {names.service} in "
        f"{names.namespace} over {slo.period} was spent in the last {tier.long} (more than "
        f"{percent_text(tier.budget_share)}), and the error ratio of the last {tier.short} is above "
        f"{percent_text(threshold)}: {burn}x the budget. {covered} of the {tier.long} window holds data. "
        f"At {burn}x all of the budget is gone in {_exhaustion(slo, tier)}."
    )


def burn_alert(config: StackConfig, service: Service, slo: Slo, tier: BurnTier) -> dict[str, Any]:
    """Fires when `tier.budget_share` of the budget is spent within the long window (of the data it holds)
    and the short window still burns at the tier's rate."""
    names = service_names(config, service)
    labels = slo_labels(names, slo)
    expr = (
        f"{budget_spent(slo, tier, labels)} > {decimal_text(tier.budget_share)}\n"
        f"and on (namespace, service, slo)\n"
        f"{slo_series(error_ratio_record(tier.short), labels)} > {decimal_text(burn_threshold(slo, tier))}"
    )
    if slo.min_events is not None:
        total = sli_queries(names, slo).total_rate(tier.long, fn="increase")
        expr += f"\nand on ()\n{total} >= {slo.min_events}"
    burn = decimal_text(tier.burn(slo.period))
    return {
        "alert": alert_name(names, slo, tier.severity),
        "expr": expr,
        "labels": {
            **rule_labels(names, slo),
            "severity": tier.severity,
            "sloth_severity": tier.severity,
            "long_window": tier.long,
            "short_window": tier.short,
        },
        "annotations": {
            "summary": f"{service.name} {slo.name} SLO: error budget burning at {burn}x or faster",
            "description": burn_description(names, slo, tier),
            "runbook_url": slo_runbook_url(config, service, slo),
        },
    }


def absent_alert(config: StackConfig, service: Service, slo: Slo) -> dict[str, Any]:
    names = service_names(config, service)
    selector = sli_queries(names, slo).total.render()
    return {
        "alert": alert_name(names, slo, "absent"),
        "expr": f"absent({selector})",
        "for": ABSENT_FOR,
        "labels": {**rule_labels(names, slo), "severity": TICKET},
        "annotations": {
            "summary": f"{service.name} {slo.name} SLO: SLI metrics are absent",
            "description": (
                f"Prometheus has had no series {_template_safe(selector)} for {ABSENT_FOR}: the {slo.name} "
                f"SLO of {service.name} is not measured and its burn-rate alerts cannot fire. Check the "
                f"ServiceMonitor {names.namespace}/{names.service}, its scrape targets and that the "
                "service exports this metric."
            ),
            "runbook_url": slo_runbook_url(config, service, slo),
        },
    }


def vanished_alert(config: StackConfig, service: Service, slo: Slo) -> dict[str, Any]:
    """Pages when the SLI's series, seen within the last day, are all gone: the targets are down or gone."""
    names = service_names(config, service)
    labels = slo_labels(names, slo)
    selector = sli_queries(names, slo).total.render()
    return {
        "alert": alert_name(names, slo, "vanished"),
        "expr": f"absent({selector})\nand on ()\n{slo_series(coverage_record(VANISHED_LOOKBACK), labels)} > 0",
        "for": VANISHED_FOR,
        "labels": {**rule_labels(names, slo), "severity": PAGE},
        "annotations": {
            "summary": f"{service.name} {slo.name} SLO: the SLI's series are gone",
            "description": (
                f"Prometheus had series {_template_safe(selector)} within the last {VANISHED_LOOKBACK} and has had none for "
                f"{VANISHED_FOR}: every target of {service.name} in {names.namespace} is gone or no longer "
                f"scraped, which is an outage the burn-rate alerts cannot see. Check the pods of "
                f"{service.name} and the ServiceMonitor {names.namespace}/{names.service}."
            ),
            "runbook_url": slo_runbook_url(config, service, slo),
        },
    }


def bucket_missing_alert(config: StackConfig, service: Service, slo: Slo) -> dict[str, Any] | None:
    """Latency: a series of the histogram without the threshold's bucket, which the SLI leaves out."""
    names = service_names(config, service)
    queries = sli_queries(names, slo)
    if queries.bucket_missing is None:
        return None
    return {
        "alert": alert_name(names, slo, "bucket"),
        "expr": queries.bucket_missing,
        "for": ABSENT_FOR,
        "labels": {**rule_labels(names, slo), "severity": TICKET},
        "annotations": {
            "summary": f"{service.name} {slo.name} SLO: a histogram has no bucket at {queries.threshold}s",
            "description": bucket_missing_description(queries),
            "runbook_url": slo_runbook_url(config, service, slo),
        },
    }


INSTANCE_TEMPLATE = "{{ $labels.instance }}"


def bucket_missing_description(queries: SliQueries, instance: str = INSTANCE_TEMPLATE) -> str:
    return (
        f"A series of {_template_safe(queries.total.render())} (instance {instance}) has had no bucket at "
        f"{queries.threshold}s for {ABSENT_FOR}: the SLO leaves its requests out. Give the histogram a "
        f"bucket at {queries.threshold}."
    )


def _template_safe(text: str) -> str:
    """Annotations are Go templates: a literal `{{` from a selector must not open an action."""
    return text.replace("{{", '{{ "{{" }}')


def alert_rules(config: StackConfig, service: Service, slo: Slo) -> list[dict[str, Any]]:
    bucket = bucket_missing_alert(config, service, slo)
    return [
        *(burn_alert(config, service, slo, tier) for tier in TIERS),
        vanished_alert(config, service, slo),
        absent_alert(config, service, slo),
        *([bucket] if bucket else []),
    ]


def rule_groups(config: StackConfig, service: Service) -> list[dict[str, Any]]:
    """Three groups per SLO: its alert windows' records, its period's records, then its alerts (exactly the
    PrometheusRule's groups)."""
    names = service_names(config, service)
    groups: list[dict[str, Any]] = []
    for slo in service.slos:
        groups.append({"name": sli_group_name(names, slo), "rules": sli_rules(names, slo)})
        groups.append({"name": budget_group_name(names, slo), "rules": budget_rules(names, slo)})
        groups.append({"name": alerts_group_name(names, slo), "rules": alert_rules(config, service, slo)})
    return groups


def _alert_names(groups: Iterable[dict[str, Any]], severity: str) -> list[str]:
    return sorted(
        {
            rule["alert"]
            for group in groups
            for rule in group["rules"]
            if "alert" in rule and rule["labels"].get("severity") == severity
        }
    )


def slo_outputs(config: StackConfig, service: Service) -> dict[str, list[str]]:
    """The `slo` entry of the service's stack outputs."""
    groups = rule_groups(config, service)
    return {
        "ruleGroups": [g["name"] for g in groups],
        "pageAlerts": _alert_names(groups, PAGE),
        "ticketAlerts": _alert_names(groups, TICKET),
    }


def object_metadata(config: StackConfig, names: ServiceNames, name: str, component: str) -> dict[str, Any]:
    labels = {**names.labels, "app.kubernetes.io/component": component}
    return {
        "name": name,
        "namespace": names.namespace,
        "labels": {**labels, **config.prometheus.rule_selector_labels},
    }


# Where the policy pack reads the configured retention of the Prometheus that evaluates the rules.
RETENTION_ANNOTATION = "roadbike.dev/prometheus-retention"


def prometheus_rule(config: StackConfig, service: Service) -> dict[str, Any]:
    names = service_names(config, service)
    metadata = object_metadata(config, names, names.resource("slo"), "slo")
    if config.prometheus.retention:
        metadata["annotations"] = {RETENTION_ANNOTATION: config.prometheus.retention}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata,
        "spec": {"groups": rule_groups(config, service)},
    }


def rules_file_name(service: Service) -> str:
    return f"{service.name}.rules.yml"
