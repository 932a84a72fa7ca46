"""SLO rules as code: a service's `slos` rendered as Prometheus recording and alerting rules.

Per SLO: SLI error-ratio recording rules for every window the alerts read, the error budget over the
30-day period, multiwindow multi-burn-rate alerts (SRE workbook: page at 14.4x over 1h and 5m or 6x over
6h and 30m, ticket at 3x over 1d and 2h or 1x over 3d and 6h) and an alert when the SLI's metrics are
absent; per service, the PrometheusRule object that carries them.

One scheme for every service: recorded series are `slo:<what>:<aggregation>` keyed by the labels
`namespace`, `service` and `slo`; alerts are `<Service><Slo>BurnRatePage|BurnRateTicket|SliMetricsAbsent`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from components.config import Service, Slo, StackConfig
from components.naming import ServiceNames, service_names
from components.slo.burn_rates import (
    ABSENT_FOR,
    PAGE,
    PERIOD,
    PERIOD_HOURS,
    TICKET,
    TIERS,
    WINDOWS,
    BurnTier,
    burn_threshold,
    decimal_text,
    error_budget,
    go_float,
    objective_ratio,
    percent_text,
)
from components.slo.selectors import Matcher, Selector, parse_selector

SLO_LABELS = ("namespace", "service", "slo")


@dataclass(frozen=True)
class SliQueries:
    """PromQL of one SLI. `bad` counts failed requests (ratio) or `good` fast ones (latency)."""

    kind: str
    total: Selector
    bad: Selector | None = None
    good: Selector | None = None
    threshold: str = ""

    def total_rate(self, window: str) -> str:
        return f"sum(rate({self.total.render()}[{window}]))"

    def error_rate(self, window: str) -> str:
        if self.bad is not None:
            # No error series yet (a counter vector only has the codes seen so far) means no errors.
            return f"(sum(rate({self.bad.render()}[{window}])) or vector(0))"
        assert self.good is not None
        return f"({self.total_rate(window)} - sum(rate({self.good.render()}[{window}])))"

    def error_ratio(self, window: str) -> str:
        # `> 0` drops the sample when there is no traffic: no NaN, nothing to alert on.
        return f"{self.error_rate(window)}\n/\n({self.total_rate(window)} > 0)"

    @property
    def absent_selector(self) -> Selector:
        """What must exist for the SLI to be measured (for latency, the threshold's bucket)."""
        return self.good if self.good is not None else self.total


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
    threshold = go_float(sli.threshold_seconds)
    bucket = histogram.renamed(histogram.metric + "_bucket").without_label("le")
    return SliQueries(
        kind="latency",
        total=histogram.renamed(histogram.metric + "_count"),
        good=replace(bucket, matchers=(*bucket.matchers, Matcher("le", "=", threshold))),
        threshold=threshold,
    )


def error_ratio_record(window: str) -> str:
    return f"slo:sli_error:ratio_rate{window}"


ERRORS_RATE_RECORD = "slo:sli_errors:rate5m"


REQUESTS_RATE_RECORD = "slo:sli_requests:rate5m"


OBJECTIVE_RECORD = "slo:objective:ratio"


BUDGET_REMAINING_RECORD = "slo:error_budget_remaining:ratio"


def _camel(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_.]", text) if part)


def alert_name(names: ServiceNames, slo: Slo, kind: str) -> str:
    """`GoHttpServerAvailabilityBurnRatePage`, `...BurnRateTicket`, `...SliMetricsAbsent`."""
    suffix = {PAGE: "BurnRatePage", TICKET: "BurnRateTicket", "absent": "SliMetricsAbsent"}[kind]
    return f"{_camel(names.service)}{_camel(slo.name)}{suffix}"


def sli_group_name(names: ServiceNames, slo: Slo) -> str:
    return f"slo-sli-{names.service}-{slo.name}"


def alerts_group_name(names: ServiceNames, slo: Slo) -> str:
    return f"slo-alerts-{names.service}-{slo.name}"


def slo_labels(names: ServiceNames, slo: Slo) -> dict[str, str]:
    return {"namespace": names.namespace, "service": names.service, "slo": slo.name}


def slo_series(record: str, labels: dict[str, str]) -> str:
    return record + "{" + ",".join(f'{k}="{labels[k]}"' for k in SLO_LABELS) + "}"


def runbook_url(config: StackConfig, service: Service, slo: Slo) -> str:
    """`<runbookBaseUrl>/<service>/<slo>`, else the SLO's runbook in the service's own repository."""
    base = config.prometheus.runbook_base_url
    if base:
        return f"{base.rstrip('/')}/{service.name}/{slo.name}"
    repository = f"https://github.com/{config.github.owner}/{service.repository}"
    return f"{repository}/blob/main/docs/runbooks/slo-{slo.name}.md"


def _record(record: str, expr: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"record": record, "expr": expr, "labels": dict(labels)}


def sli_rules(names: ServiceNames, slo: Slo) -> list[dict[str, Any]]:
    """Error ratios for every alert window, the 5m rates and the 30-day error budget."""
    queries = sli_queries(names, slo)
    labels = slo_labels(names, slo)
    budget = decimal_text(error_budget(slo))
    rules = [_record(error_ratio_record(w), queries.error_ratio(w), labels) for w in WINDOWS]
    rules += [
        _record(ERRORS_RATE_RECORD, queries.error_rate("5m"), labels),
        _record(REQUESTS_RATE_RECORD, queries.total_rate("5m"), labels),
        # Traffic-weighted 30-day ratio from the 5m rates: cheap, and long outages count by volume.
        _record(
            error_ratio_record(PERIOD),
            f"sum_over_time({slo_series(ERRORS_RATE_RECORD, labels)}[{PERIOD}])\n/\n"
            f"(sum_over_time({slo_series(REQUESTS_RATE_RECORD, labels)}[{PERIOD}]) > 0)",
            labels,
        ),
        _record(OBJECTIVE_RECORD, f"vector({decimal_text(objective_ratio(slo))})", labels),
        _record(
            BUDGET_REMAINING_RECORD,
            f"1 - {slo_series(error_ratio_record(PERIOD), labels)} / {budget}",
            labels,
        ),
    ]
    return rules


def _exhaustion(tier: BurnTier) -> str:
    hours = Decimal(PERIOD_HOURS) / tier.burn
    days, rest = divmod(hours, 24)
    return (f"{decimal_text(days)}d" if days else "") + (f"{decimal_text(rest)}h" if rest else "")


def burn_alert(config: StackConfig, service: Service, slo: Slo, tier: BurnTier) -> dict[str, Any]:
    names = service_names(config, service)
    labels = slo_labels(names, slo)
    threshold = burn_threshold(slo, tier)
    limit = decimal_text(threshold)
    expr = (
        f"{slo_series(error_ratio_record(tier.long), labels)} > {limit}\n"
        f"and\n"
        f"{slo_series(error_ratio_record(tier.short), labels)} > {limit}"
    )
    burn = decimal_text(tier.burn)
    description = (
        f"The {slo.name} error ratio of {service.name} in {names.namespace} is above {percent_text(threshold)} "
        f"over both the last {tier.long} and {tier.short}: {burn}x the {percent_text(error_budget(slo))} "
        f"error budget of the {decimal_text(objective_ratio(slo) * 100)}% objective over {PERIOD}. "
        f"{percent_text(tier.budget_consumed)} of the budget is gone in {tier.long}; "
        f"at this rate all of it is gone in {_exhaustion(tier)}."
    )
    return {
        "alert": alert_name(names, slo, tier.severity),
        "expr": expr,
        "labels": {**labels, "severity": tier.severity, "long_window": tier.long, "short_window": tier.short},
        "annotations": {
            "summary": f"{service.name} {slo.name} SLO: error budget burning at {burn}x or faster",
            "description": description,
            "runbook_url": runbook_url(config, service, slo),
        },
    }


def absent_alert(config: StackConfig, service: Service, slo: Slo) -> dict[str, Any]:
    names = service_names(config, service)
    selector = sli_queries(names, slo).absent_selector.render()
    return {
        "alert": alert_name(names, slo, "absent"),
        "expr": f"absent({selector})",
        "for": ABSENT_FOR,
        "labels": {**slo_labels(names, slo), "severity": TICKET},
        "annotations": {
            "summary": f"{service.name} {slo.name} SLO: SLI metrics are absent",
            "description": _template_safe(
                f"Prometheus has had no series {selector} for {ABSENT_FOR}: the {slo.name} SLO of "
                f"{service.name} is not measured and its burn-rate alerts cannot fire. Check the "
                f"ServiceMonitor {names.namespace}/{names.service}, its scrape targets and that the "
                "service exports this metric."
            ),
            "runbook_url": runbook_url(config, service, slo),
        },
    }


def _template_safe(text: str) -> str:
    """Annotations are Go templates: a literal `{{` from a selector must not open an action."""
    return text.replace("{{", '{{ "{{" }}')


def alert_rules(config: StackConfig, service: Service, slo: Slo) -> list[dict[str, Any]]:
    return [burn_alert(config, service, slo, tier) for tier in TIERS] + [absent_alert(config, service, slo)]


def rule_groups(config: StackConfig, service: Service) -> list[dict[str, Any]]:
    """Two groups per SLO: its recording rules, then its alerts (exactly the PrometheusRule's groups)."""
    names = service_names(config, service)
    groups: list[dict[str, Any]] = []
    for slo in service.slos:
        groups.append({"name": sli_group_name(names, slo), "rules": sli_rules(names, slo)})
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


def prometheus_rule(config: StackConfig, service: Service) -> dict[str, Any]:
    names = service_names(config, service)
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": object_metadata(config, names, names.resource("slo"), "slo"),
        "spec": {"groups": rule_groups(config, service)},
    }


def rules_file_name(service: Service) -> str:
    return f"{service.name}.rules.yml"
