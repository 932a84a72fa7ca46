"""SLO rules as code: pure renderers from a service's `slos` to everything Prometheus needs.

Per SLO: SLI error-ratio recording rules for every window the alerts read, the error budget over the
30-day period, multiwindow multi-burn-rate alerts (SRE workbook: page at 14.4x over 1h and 5m or 6x over
6h and 30m, ticket at 3x over 1d and 2h or 1x over 3d and 6h) and an alert when the SLI's metrics are
absent. Per service: the PrometheusRule, ServiceMonitor and AnalysisTemplate objects and promtool unit
tests that prove the alerts on synthetic series. Per stack: the Alertmanager routing.

One scheme for every service: recorded series are `slo:<what>:<aggregation>` keyed by the labels
`namespace`, `service` and `slo`; alerts are `<Service><Slo>BurnRatePage|BurnRateTicket|SliMetricsAbsent`.
"""

from __future__ import annotations

import math
import re
import re._constants as sre_constants  # type: ignore[import-not-found]
import re._parser as sre_parse  # type: ignore[import-not-found]
from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from components.config import Service, Slo, StackConfig
from components.naming import ServiceNames, platform_labels, service_names
from components.yaml_text import to_yaml

PERIOD = "30d"
PERIOD_HOURS = 720
PAGE = "page"
TICKET = "ticket"
ABSENT_FOR = "10m"
# The windows the alerts read, shortest first; the 5m rates also feed the 30-day error budget.
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
WINDOW_MINUTES = {"m": 1, "h": 60, "d": 1440}
SLO_LABELS = ("namespace", "service", "slo")
DEFAULT_PROMETHEUS_ADDRESS = "http://prometheus-operated.monitoring.svc:9090"
# Argo Rollouts labels each pod with the hash of its template; the ServiceMonitor keeps it on the series
# so that the SLI gate can look at the canary's pods only.
POD_TEMPLATE_HASH = "rollouts-pod-template-hash"
SCRAPE_INTERVAL = "30s"


@dataclass(frozen=True)
class BurnTier:
    """One window pair of the multiwindow, multi-burn-rate alerts."""

    severity: str
    long: str
    short: str
    burn: Decimal

    @property
    def budget_consumed(self) -> Decimal:
        """The share of the period's error budget spent when this pair fires: burn x long / period."""
        return self.burn * window_minutes(self.long) / (PERIOD_HOURS * 60)


TIERS = (
    BurnTier(PAGE, "1h", "5m", Decimal("14.4")),
    BurnTier(PAGE, "6h", "30m", Decimal("6")),
    BurnTier(TICKET, "1d", "2h", Decimal("3")),
    BurnTier(TICKET, "3d", "6h", Decimal("1")),
)


def window_minutes(window: str) -> int:
    return int(window[:-1]) * WINDOW_MINUTES[window[-1]]


# --- numbers ---------------------------------------------------------------------------------------


def go_float(value: float) -> str:
    """`value` as Go's strconv.FormatFloat(v, 'g', -1, 64) writes it: how client_golang writes `le`."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    _, digit_tuple, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + int(exponent)  # digits before the decimal point
    if point - 1 < -4 or point - 1 >= 6:  # Go uses %e outside this range for the shortest form
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        power = point - 1
        return f"{sign}{mantissa}e{'-' if power < 0 else '+'}{abs(power):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def decimal_text(value: Decimal) -> str:
    """A decimal without exponent or trailing zeros: 0.0720 -> 0.072, 1E+2 -> 100."""
    return format(value.normalize(), "f")


def percent_text(ratio: Decimal) -> str:
    return decimal_text(ratio * 100) + "%"


def objective_ratio(slo: Slo) -> Decimal:
    return Decimal(repr(slo.objective)) / 100


def error_budget(slo: Slo) -> Decimal:
    """The share of requests allowed to fail: 1 - objective (0.005 for 99.5%)."""
    return 1 - objective_ratio(slo)


def burn_threshold(slo: Slo, tier: BurnTier) -> Decimal:
    """The error ratio above which a window burns the budget `tier.burn` times too fast."""
    return tier.burn * error_budget(slo)


# --- selectors ------------------------------------------------------------------------------------

_MATCHER = re.compile(
    r"""\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*,?"""
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str  # unquoted

    def render(self) -> str:
        quoted = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{quoted}"'

    def matches(self, value: str) -> bool:
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        try:
            found = re.fullmatch(self.value, value) is not None
        except re.error:
            return False
        return found if self.op == "=~" else not found

    def negated(self) -> Matcher:
        return replace(self, op={"=": "!=", "!=": "=", "=~": "!~", "!~": "=~"}[self.op])


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[Matcher, ...] = ()

    def render(self) -> str:
        if not self.matchers:
            return self.metric
        return self.metric + "{" + ",".join(m.render() for m in self.matchers) + "}"

    def renamed(self, metric: str) -> Selector:
        return replace(self, metric=metric)

    def with_labels(self, labels: dict[str, str]) -> Selector:
        """Adds an equality matcher for each label the selector does not constrain already."""
        constrained = {m.name for m in self.matchers}
        extra = tuple(Matcher(k, "=", v) for k, v in sorted(labels.items()) if k not in constrained)
        return replace(self, matchers=self.matchers + extra)

    def without_label(self, name: str) -> Selector:
        return replace(self, matchers=tuple(m for m in self.matchers if m.name != name))


def _unquote(quoted: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), quoted[1:-1])


def parse_selector(text: str) -> Selector:
    """A selector already checked by the config (`metric` or `metric{label op "value", ...}`)."""
    metric, _, body = text.strip().partition("{")
    body = body.rstrip().removesuffix("}")
    matchers = tuple(Matcher(m.group(1), m.group(2), _unquote(m.group(3))) for m in _MATCHER.finditer(body))
    return Selector(metric.strip(), matchers)


# --- SLIs -----------------------------------------------------------------------------------------


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


# --- names ----------------------------------------------------------------------------------------


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


def _series(record: str, labels: dict[str, str]) -> str:
    return record + "{" + ",".join(f'{k}="{labels[k]}"' for k in SLO_LABELS) + "}"


def runbook_url(config: StackConfig, service: Service, slo: Slo) -> str:
    """`<runbookBaseUrl>/<service>/<slo>`, else the SLO's runbook in the service's own repository."""
    base = config.prometheus.runbook_base_url
    if base:
        return f"{base.rstrip('/')}/{service.name}/{slo.name}"
    repository = f"https://github.com/{config.github.owner}/{service.repository}"
    return f"{repository}/blob/main/docs/runbooks/slo-{slo.name}.md"


# --- rules ----------------------------------------------------------------------------------------


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
            f"sum_over_time({_series(ERRORS_RATE_RECORD, labels)}[{PERIOD}])\n/\n"
            f"(sum_over_time({_series(REQUESTS_RATE_RECORD, labels)}[{PERIOD}]) > 0)",
            labels,
        ),
        _record(OBJECTIVE_RECORD, f"vector({decimal_text(objective_ratio(slo))})", labels),
        _record(
            BUDGET_REMAINING_RECORD,
            f"1 - {_series(error_ratio_record(PERIOD), labels)} / {budget}",
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
        f"{_series(error_ratio_record(tier.long), labels)} > {limit}\n"
        f"and\n"
        f"{_series(error_ratio_record(tier.short), labels)} > {limit}"
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


def probe_outputs(service: Service) -> dict[str, Any] | None:
    """The `probe` entry of the service's stack outputs (for `roadbike verify`), thresholds from the SLOs.

    p95 latency: the strictest latency SLI threshold; success ratio: the strictest ratio SLO objective;
    error ratio: what the success ratio leaves, unless the config names it.
    """
    probe = service.probe
    if probe is None:
        return None
    latency = probe.latency_threshold_seconds or min(
        s.sli.threshold_seconds for s in service.slos if s.sli.type == "latency" and s.sli.threshold_seconds
    )
    success = probe.success_ratio or float(
        max(objective_ratio(s) for s in service.slos if s.sli.type == "ratio")
    )
    error = probe.error_ratio if probe.error_ratio is not None else float(Decimal(1) - Decimal(str(success)))
    return {
        "url": probe.url,
        "requests": probe.requests,
        "concurrency": probe.concurrency,
        "latencyThresholdSeconds": latency,
        "successRatio": success,
        "errorRatio": error,
    }


# --- Kubernetes objects ---------------------------------------------------------------------------


def _metadata(config: StackConfig, names: ServiceNames, name: str, component: str) -> dict[str, Any]:
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
        "metadata": _metadata(config, names, names.resource("slo"), "slo"),
        "spec": {"groups": rule_groups(config, service)},
    }


def service_monitor(config: StackConfig, service: Service) -> dict[str, Any]:
    names = service_names(config, service)
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _metadata(config, names, names.service, "monitoring"),
        "spec": {
            "selector": {"matchLabels": dict(names.selector)},
            "namespaceSelector": {"matchNames": [names.namespace]},
            "jobLabel": names.job_label,
            "podTargetLabels": [POD_TEMPLATE_HASH],
            "endpoints": [
                {
                    "port": service.metrics_port,
                    "path": service.metrics_path,
                    "interval": SCRAPE_INTERVAL,
                    "scheme": "http",
                }
            ],
        },
    }


def _gate_conditions(comparison: str, failing: str) -> dict[str, str]:
    """NaN-safe: no traffic (empty result or NaN) is neither success nor failure but inconclusive."""
    measured = "len(result) > 0 && !isNaN(result[0])"
    return {
        "successCondition": f"{measured} && result[0] {comparison}",
        "failureCondition": f"{measured} && result[0] {failing}",
    }


def _canary_scope(selector: Selector) -> Selector:
    label = POD_TEMPLATE_HASH.replace("-", "_")
    return replace(
        selector, matchers=(*selector.matchers, Matcher(label, "=~", "{{args.pod-template-hash}}"))
    )


def gate_metric(names: ServiceNames, slo: Slo) -> dict[str, Any]:
    queries = sli_queries(names, slo)
    canary = replace(
        queries,
        total=_canary_scope(queries.total),
        bad=_canary_scope(queries.bad) if queries.bad else None,
        good=_canary_scope(queries.good) if queries.good else None,
    )
    objective = decimal_text(objective_ratio(slo))
    if canary.good is not None:  # latency: the objective's quantile must stay under the threshold
        buckets = canary.good.without_label("le").render()
        query = f"histogram_quantile({objective}, sum by (le) (rate({buckets}[5m])))"
        conditions = _gate_conditions(f"<= {queries.threshold}", f"> {queries.threshold}")
    else:  # ratio: the success ratio must meet the objective
        query = f"1 - (\n{canary.error_ratio('5m')}\n)"
        conditions = _gate_conditions(f">= {objective}", f"< {objective}")
    return {
        "name": slo.name,
        "interval": "1m",
        "count": 5,
        "failureLimit": 1,
        **conditions,
        "provider": {"prometheus": {"address": "{{args.prometheus-address}}", "query": query, "timeout": 30}},
    }


def analysis_template(config: StackConfig, service: Service) -> dict[str, Any]:
    """The post-deploy SLI gate: one metric per SLO, for canary steps to reference."""
    names = service_names(config, service)
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": _metadata(config, names, names.resource("sli-gate"), "sli-gate"),
        "spec": {
            "args": [
                {"name": "prometheus-address", "value": config.prometheus.url or DEFAULT_PROMETHEUS_ADDRESS},
                # `podTemplateHashValue: Latest` from the Rollout narrows the gate to the canary's pods.
                {"name": "pod-template-hash", "value": ".*"},
            ],
            "metrics": [gate_metric(names, slo) for slo in service.slos],
        },
    }


# --- Alertmanager ---------------------------------------------------------------------------------

PAGE_RECEIVER = "slo-page"
TICKET_RECEIVER = "slo-ticket"
GROUP_BY = ["alertname", *SLO_LABELS]
ROUTES = ((PAGE_RECEIVER, PAGE, "1h"), (TICKET_RECEIVER, TICKET, "1d"))
ALERTMANAGER_CONFIG_NAME = "slo-routing"


def alertmanager_config(config: StackConfig) -> dict[str, Any]:
    """alertmanager.yml for the stack's SLO alerts: pages and tickets to their own receivers, and a
    page silences the tickets of the same SLO while it fires."""
    return {
        "route": {
            "receiver": TICKET_RECEIVER,
            "group_by": list(GROUP_BY),
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [
                {"receiver": receiver, "matchers": [f'severity="{severity}"'], "repeat_interval": repeat}
                for receiver, severity, repeat in ROUTES
            ],
        },
        "receivers": [{"name": receiver} for receiver, _, _ in ROUTES],
        "inhibit_rules": [
            {
                "source_matchers": [f'severity="{PAGE}"'],
                "target_matchers": [f'severity="{TICKET}"'],
                "equal": list(SLO_LABELS),
            }
        ],
    }


def _cr_matcher(severity: str) -> dict[str, str]:
    return {"name": "severity", "value": severity, "matchType": "="}


def alertmanager_config_resource(config: StackConfig) -> dict[str, Any]:
    """The same routing as an AlertmanagerConfig in the stack's namespace (the operator scopes it there)."""
    return {
        "apiVersion": "monitoring.coreos.com/v1alpha1",
        "kind": "AlertmanagerConfig",
        "metadata": {
            "name": ALERTMANAGER_CONFIG_NAME,
            "namespace": config.kubernetes.namespace,
            "labels": {**platform_labels(config), **config.prometheus.rule_selector_labels},
        },
        "spec": {
            "route": {
                "receiver": TICKET_RECEIVER,
                "groupBy": list(GROUP_BY),
                "groupWait": "30s",
                "groupInterval": "5m",
                "repeatInterval": "4h",
                "routes": [
                    {"receiver": receiver, "matchers": [_cr_matcher(severity)], "repeatInterval": repeat}
                    for receiver, severity, repeat in ROUTES
                ],
            },
            "receivers": [{"name": receiver} for receiver, _, _ in ROUTES],
            "inhibitRules": [
                {
                    "sourceMatch": [_cr_matcher(PAGE)],
                    "targetMatch": [_cr_matcher(TICKET)],
                    "equal": list(SLO_LABELS),
                }
            ],
        },
    }


# --- promtool unit tests --------------------------------------------------------------------------

REQUESTS_PER_MINUTE = Decimal(1000)
HEALTHY_MINUTES = 360  # a full 6h window of good traffic before a burn starts
STEADY_MINUTES = 120  # long enough for every window to hold the steady error ratio
FAST_BURN = Decimal(36)  # well above 14.4x where the objective allows it
SLOW_BURN = Decimal(2)
LOW_BURN = Decimal("0.5")


@dataclass(frozen=True)
class Phase:
    minutes: int
    bad_fraction: Decimal
    requests_per_minute: Decimal = REQUESTS_PER_MINUTE


def counter_values(steps: list[tuple[int, Decimal]]) -> str:
    """promtool expanding notation of a counter from 0 that grows by `step` per minute in each phase."""
    parts: list[str] = []
    value = Decimal(0)
    for index, (minutes, step) in enumerate(steps):
        if index == 0:
            parts.append(f"0+{decimal_text(step)}x{minutes}")
            value = step * minutes
        else:
            start = value + step
            parts.append(f"{decimal_text(start)}+{decimal_text(step)}x{minutes - 1}")
            value = start + step * (minutes - 1)
    return " ".join(parts)


def _regex_example(pattern: str) -> str | None:
    """A short string the regex matches, or None; good enough for selectors' typical regexes."""
    try:
        tree = sre_parse.parse(pattern)
    except re.error:
        return None
    return _emit(list(tree))


def _emit(items: list[Any]) -> str | None:
    out = ""
    for op, arg in items:
        if op is sre_constants.LITERAL:
            out += chr(arg)
        elif op is sre_constants.ANY:
            out += "0"
        elif op is sre_constants.IN:
            first = _emit_class(arg)
            if first is None:
                return None
            out += first
        elif op is sre_constants.BRANCH:
            part = _emit(list(arg[1][0]))
            if part is None:
                return None
            out += part
        elif op is sre_constants.SUBPATTERN:
            part = _emit(list(arg[-1]))
            if part is None:
                return None
            out += part
        elif op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
            low, _, sub = arg
            part = _emit(list(sub))
            if part is None:
                return None
            out += part * low
        elif op is not sre_constants.AT:
            return None
    return out


def _emit_class(items: list[Any]) -> str | None:
    op, arg = items[0]
    if op is sre_constants.LITERAL:
        return str(chr(arg))
    if op is sre_constants.RANGE:
        return str(chr(arg[0]))
    if op is sre_constants.CATEGORY:
        return {sre_constants.CATEGORY_DIGIT: "0", sre_constants.CATEGORY_WORD: "a"}.get(arg)
    return None


_CANDIDATES = ("", "200", "500", "OK", "ok", "error", "true", "false", "0", "1", "x")


def example_labels(matchers: Iterable[Matcher]) -> dict[str, str] | None:
    """Label values that satisfy every matcher (an empty value means the label is absent), or None."""
    by_label: dict[str, list[Matcher]] = {}
    for matcher in matchers:
        by_label.setdefault(matcher.name, []).append(matcher)
    labels: dict[str, str] = {}
    for name, group in sorted(by_label.items()):
        candidates = [m.value for m in group if m.op == "="]
        candidates += [x for m in group if m.op == "=~" and (x := _regex_example(m.value)) is not None]
        candidates += list(_CANDIDATES) + [m.value + "_other" for m in group]
        value = next((c for c in candidates if all(m.matches(c) for m in group)), None)
        if value is None:
            return None
        if value:
            labels[name] = value
    return labels


def _series_text(metric: str, labels: dict[str, str]) -> str:
    return metric + "{" + ",".join(Matcher(k, "=", v).render() for k, v in sorted(labels.items())) + "}"


@dataclass(frozen=True)
class SyntheticSli:
    """Input series that drive one SLI: each one counts bad, good or all requests."""

    series: tuple[tuple[str, str], ...]  # (series text, "bad" | "good" | "all")

    def input_series(self, phases: list[Phase]) -> list[dict[str, str]]:
        result = []
        for text, counts in self.series:
            steps = [(p.minutes, _per_minute(p, counts)) for p in phases]
            result.append({"series": text, "values": counter_values(steps)})
        return result


def _per_minute(phase: Phase, counts: str) -> Decimal:
    bad = phase.requests_per_minute * phase.bad_fraction
    return {"bad": bad, "good": phase.requests_per_minute - bad, "all": phase.requests_per_minute}[counts]


class SyntheticSeriesError(ValueError):
    pass


def _labels_or_raise(matchers: Iterable[Matcher], what: str) -> dict[str, str]:
    labels = example_labels(matchers)
    if labels is None:
        raise SyntheticSeriesError(f"no series can match {what}")
    return labels


def synthetic_sli(queries: SliQueries) -> SyntheticSli:
    """Series that match the SLI's selectors: the bad (or good) requests and the rest."""
    if queries.good is not None:  # latency: the threshold's bucket counts the good requests
        good = _labels_or_raise(queries.good.matchers, queries.good.render())
        total = {k: v for k, v in good.items() if k != "le"}
        return SyntheticSli(
            (
                (_series_text(queries.good.metric, good), "good"),
                (_series_text(queries.total.metric, total), "all"),
            )
        )
    assert queries.bad is not None
    if queries.bad.metric != queries.total.metric:  # errors counted apart from all requests
        bad = _labels_or_raise(queries.bad.matchers, queries.bad.render())
        every = _labels_or_raise(queries.total.matchers, queries.total.render())
        return SyntheticSli(
            (
                (_series_text(queries.bad.metric, bad), "bad"),
                (_series_text(queries.total.metric, every), "all"),
            )
        )
    # One counter split by a label: the good series breaks one of the errors selector's matchers.
    bad = _labels_or_raise((*queries.bad.matchers, *queries.total.matchers), queries.bad.render())
    candidates = (example_labels((m.negated(), *queries.total.matchers)) for m in queries.bad.matchers)
    rest = next((labels for labels in candidates if labels is not None), None)
    if rest is None:
        raise SyntheticSeriesError(
            f"no series matches {queries.total.render()} but not {queries.bad.render()}"
        )
    return SyntheticSli(
        ((_series_text(queries.bad.metric, bad), "bad"), (_series_text(queries.total.metric, rest), "good"))
    )


def _minutes(value: int) -> str:
    return f"{value}m"


def _absent_labels(selector: Selector) -> dict[str, str]:
    """The labels absent() gives its result: the selector's equality matchers used once."""
    counts: dict[str, int] = {}
    for m in selector.matchers:
        counts[m.name] = counts.get(m.name, 0) + 1
    return {m.name: m.value for m in selector.matchers if m.op == "=" and counts[m.name] == 1 and m.value}


def _expect(
    eval_minute: int, alertname: str, rules: list[dict[str, Any]], extra: dict[str, str] | None = None
) -> dict[str, Any]:
    """An alert_rule_test entry: exactly these rules' alerts fire (none when `rules` is empty)."""
    return {
        "eval_time": _minutes(eval_minute),
        "alertname": alertname,
        "exp_alerts": [
            {
                "exp_labels": {**(extra or {}), **rule["labels"]},
                "exp_annotations": dict(rule["annotations"]),
            }
            for rule in rules
        ],
    }


@dataclass(frozen=True)
class SloTestPlan:
    config: StackConfig
    service: Service
    slo: Slo

    @property
    def names(self) -> ServiceNames:
        return service_names(self.config, self.service)

    @property
    def queries(self) -> SliQueries:
        return sli_queries(self.names, self.slo)

    def tier_rules(self, tier: BurnTier) -> list[dict[str, Any]]:
        return [burn_alert(self.config, self.service, self.slo, tier)]

    def name(self, kind: str) -> str:
        return alert_name(self.names, self.slo, kind)

    def max_burn(self) -> Decimal:
        return 1 / error_budget(self.slo)

    def inputs(self, phases: list[Phase]) -> list[dict[str, str]]:
        return synthetic_sli(self.queries).input_series(phases)


def _phases(*pairs: tuple[int, Decimal]) -> list[Phase]:
    return [Phase(minutes, fraction) for minutes, fraction in pairs]


def fast_burn_test(plan: SloTestPlan) -> dict[str, Any]:
    """After 6h of good traffic a fast burn starts; the page fires once the 1h ratio crosses 14.4x."""
    page = TIERS[0]
    burn = min(FAST_BURN, plan.max_burn())
    fraction = burn * error_budget(plan.slo)
    # Workbook: time to fire = budget / error ratio x window x burn threshold.
    fire_minutes = error_budget(plan.slo) / fraction * window_minutes(page.long) * page.burn
    before = int(fire_minutes) - 3
    after = math.ceil(fire_minutes) + 3
    return {
        "name": f"{plan.slo.name}: a {decimal_text(burn)}x burn pages within {decimal_text(fire_minutes)}m",
        "interval": "1m",
        "input_series": plan.inputs(_phases((HEALTHY_MINUTES, Decimal(0)), (after + 1, fraction))),
        "alert_rule_test": [
            _expect(HEALTHY_MINUTES, plan.name(PAGE), []),
            _expect(HEALTHY_MINUTES + before, plan.name(PAGE), []),
            _expect(HEALTHY_MINUTES + after, plan.name(PAGE), plan.tier_rules(page)),
        ],
    }


def low_burn_test(plan: SloTestPlan) -> dict[str, Any]:
    """Errors at half the budget for 2h: nothing fires, and half the budget remains."""
    fraction = LOW_BURN * error_budget(plan.slo)
    labels = slo_labels(plan.names, plan.slo)
    return {
        "name": f"{plan.slo.name}: a {decimal_text(LOW_BURN)}x burn fires nothing",
        "interval": "1m",
        "input_series": plan.inputs(_phases((STEADY_MINUTES, fraction))),
        "alert_rule_test": [
            _expect(minute, plan.name(kind), []) for minute in (30, STEADY_MINUTES) for kind in (PAGE, TICKET)
        ],
        "promql_expr_test": [
            {
                "expr": f"round({_series(BUDGET_REMAINING_RECORD, labels)}, 0.01)",
                "eval_time": _minutes(STEADY_MINUTES),
                "exp_samples": [{"labels": _series("", labels), "value": 0.5}],
            }
        ],
    }


def slow_burn_test(plan: SloTestPlan) -> dict[str, Any]:
    """Errors at twice the budget: the 3d/6h ticket fires, the 3x ticket and both pages do not."""
    fraction = SLOW_BURN * error_budget(plan.slo)
    slow_ticket = TIERS[3]
    return {
        "name": f"{plan.slo.name}: a {decimal_text(SLOW_BURN)}x burn opens a ticket and does not page",
        "interval": "1m",
        "input_series": plan.inputs(_phases((STEADY_MINUTES, fraction))),
        "alert_rule_test": [
            rule
            for minute in (30, STEADY_MINUTES)
            for rule in (
                _expect(minute, plan.name(PAGE), []),
                _expect(minute, plan.name(TICKET), plan.tier_rules(slow_ticket)),
            )
        ],
    }


def zero_traffic_test(plan: SloTestPlan) -> dict[str, Any]:
    """Flat counters: no error ratio is recorded (no NaN) and nothing fires."""
    labels = slo_labels(plan.names, plan.slo)
    minutes = 60
    inputs = plan.inputs([Phase(minutes, Decimal(0), Decimal(0))])
    for series in inputs:  # counters that exist but do not move
        series["values"] = f"100+0x{minutes}"
    return {
        "name": f"{plan.slo.name}: zero traffic fires nothing and records no NaN",
        "interval": "1m",
        "input_series": inputs,
        "alert_rule_test": [
            _expect(minute, plan.name(kind), [])
            for minute in (30, minutes)
            for kind in (PAGE, TICKET, "absent")
        ],
        "promql_expr_test": [
            {"expr": _series(record, labels), "eval_time": _minutes(minutes), "exp_samples": []}
            for record in (error_ratio_record("5m"), error_ratio_record("3d"), BUDGET_REMAINING_RECORD)
        ],
    }


def absent_test(plan: SloTestPlan) -> dict[str, Any]:
    """No series at all: the absent alert fires after its `for`, the burn alerts stay quiet."""
    absent_rule = absent_alert(plan.config, plan.service, plan.slo)
    extra = _absent_labels(plan.queries.absent_selector)
    fires_at = window_minutes(ABSENT_FOR) + 5
    return {
        "name": f"{plan.slo.name}: absent metrics fire {absent_rule['alert']}",
        "interval": "1m",
        "input_series": [{"series": 'up{job="unrelated"}', "values": f"1x{fires_at}"}],
        "alert_rule_test": [
            _expect(window_minutes(ABSENT_FOR) - 5, absent_rule["alert"], []),
            _expect(fires_at, absent_rule["alert"], [absent_rule], extra),
            _expect(fires_at, plan.name(PAGE), []),
            _expect(fires_at, plan.name(TICKET), []),
        ],
    }


TRAFFIC_CASES = (fast_burn_test, low_burn_test, slow_burn_test, zero_traffic_test)


def slo_tests(plan: SloTestPlan) -> list[dict[str, Any]]:
    """Every scenario for one SLO; just the absent one when no series can match its selectors (e.g. errors
    that exclude every series of total): the rules still load, but there is no traffic to simulate."""
    try:
        traffic = [case(plan) for case in TRAFFIC_CASES]
    except SyntheticSeriesError:
        traffic = []
    return [*traffic, absent_test(plan)]


def promtool_tests(config: StackConfig, service: Service) -> dict[str, Any]:
    """The promtool unit-test file of one service, next to its rules file."""
    return {
        "rule_files": [rules_file_name(service)],
        "evaluation_interval": "1m",
        "group_eval_order": [g["name"] for g in rule_groups(config, service)],
        "tests": [test for slo in service.slos for test in slo_tests(SloTestPlan(config, service, slo))],
    }


# --- plan artifacts -------------------------------------------------------------------------------


def rules_file_name(service: Service) -> str:
    return f"{service.name}.rules.yml"


def slo_artifacts(config: StackConfig) -> dict[str, str]:
    """prometheus/<service>.rules.yml and .test.yml for each service with SLOs, and alertmanager.yml."""
    files = {"prometheus/alertmanager.yml": to_yaml(alertmanager_config(config))}
    for service in config.services:
        if not service.slos:
            continue
        files[f"prometheus/{rules_file_name(service)}"] = to_yaml({"groups": rule_groups(config, service)})
        files[f"prometheus/{service.name}.test.yml"] = to_yaml(promtool_tests(config, service))
    return files
