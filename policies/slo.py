"""Policies on SLO rules: alerts people can act on, every service covered, budgets that can be burned."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies.resource_types import DELIVERY_CHAIN, PROMETHEUS_RULE
from policies.util import get_path

REQUIRED_LABELS = ("severity",)
REQUIRED_ANNOTATIONS = ("summary", "runbook_url")
PAGE, TICKET = "page", "ticket"
OBJECTIVE_RECORD = "slo:objective:ratio"
CONSTANT_VECTOR = re.compile(r"^\s*vector\(\s*([0-9.eE+-]+)\s*\)\s*$")
# The fastest page burns the budget 14.4x too fast over 1h: the error ratio it needs must stay below 1.
FASTEST_PAGE_BURN = 14.4
# The operator refuses a PrometheusRule whose rendered rule file exceeds half a Secret (512 KiB).
MAX_RULE_BYTES = 512 * 1024


def _rules(props: Any) -> Iterator[Mapping[str, Any]]:
    for group in get_path(props, "spec", "groups", default=[]):
        for rule in get_path(group, "rules", default=[]):
            if isinstance(rule, Mapping):
                yield rule


def _rule_name(props: Any, fallback: str) -> str:
    namespace = get_path(props, "metadata", "namespace", default="")
    name = get_path(props, "metadata", "name", default=fallback)
    return f"{namespace}/{name}" if namespace else str(name)


def alert_severity_summary_runbook(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != PROMETHEUS_RULE:
        return
    for rule in _rules(args.props):
        if "alert" not in rule:
            continue
        missing = [f"label {k}" for k in REQUIRED_LABELS if not get_path(rule, "labels", k)]
        missing += [f"annotation {k}" for k in REQUIRED_ANNOTATIONS if not get_path(rule, "annotations", k)]
        if missing:
            report_violation(
                f"alert {rule['alert']!r} in PrometheusRule {_rule_name(args.props, args.name)} has no "
                f"{', '.join(missing)}: on-call needs the severity to route it, a summary to read and a "
                "runbook_url to act on it",
                None,
            )


def _objective(rule: Mapping[str, Any]) -> float | None:
    match = CONSTANT_VECTOR.match(str(get_path(rule, "expr", default="")))
    try:
        return float(match.group(1)) if match else None
    except ValueError:
        return None


def _objective_problem(objective: float | None) -> str | None:
    if objective is None:
        return f"is not a constant; record {OBJECTIVE_RECORD} as vector(<ratio>)"
    if not 0 < objective < 1:
        return f"is {objective:g}, which leaves no error budget; use a ratio strictly between 0 and 1"
    if FASTEST_PAGE_BURN * (1 - objective) >= 1:
        return (
            f"is {objective:g}: its error budget is so large that a {FASTEST_PAGE_BURN}x burn needs more "
            f"than 100% errors and the page can never fire; raise the objective above "
            f"{100 * (1 - 1 / FASTEST_PAGE_BURN):.2f}%"
        )
    return None


def slo_objective_leaves_error_budget(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    if args.resource_type != PROMETHEUS_RULE:
        return
    for rule in _rules(args.props):
        if rule.get("record") != OBJECTIVE_RECORD:
            continue
        problem = _objective_problem(_objective(rule))
        if problem:
            slo = get_path(rule, "labels", "slo", default="?")
            service = get_path(rule, "labels", "service", default="?")
            report_violation(f"the objective of SLO {slo!r} of service {service!r} {problem}", None)


def _plain(value: Any) -> Any:
    """Engine proxies to plain JSON values."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(v) for v in value]
    return value


def rule_bytes(props: Any) -> int:
    """The spec as indented JSON: an upper bound of the YAML rule file the operator renders from it."""
    return len(json.dumps(_plain(get_path(props, "spec", default={})), indent=2).encode())


def prometheus_rule_under_size_limit(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != PROMETHEUS_RULE:
        return
    size = rule_bytes(args.props)
    if size > MAX_RULE_BYTES:
        report_violation(
            f"PrometheusRule {_rule_name(args.props, args.name)} is {size} bytes, over the operator's "
            f"limit of {MAX_RULE_BYTES} (512 KiB): split the service's SLOs over more PrometheusRules "
            "or shorten their selectors",
            None,
        )


RETENTION_ANNOTATION = "roadbike.dev/prometheus-retention"
PERIOD_RECORD = re.compile(r"^slo:sli_error:ratio_rate(\d+)d$")
DURATION_PART = re.compile(r"(\d+)(ms|[ywdhms])")
DURATION_SECONDS = {"y": 31536000, "w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}


def _duration_seconds(text: str) -> float | None:
    if not re.fullmatch(r"(?:\d{1,6}(?:ms|[ywdhms]))+", text):
        return None
    return float(sum(int(n) * DURATION_SECONDS[u] for n, u in DURATION_PART.findall(text)))


def slo_period_within_retention(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != PROMETHEUS_RULE:
        return
    retention = str(get_path(args.props, "metadata", "annotations", RETENTION_ANNOTATION, default="") or "")
    seconds = _duration_seconds(retention)
    if seconds is None:
        return
    for rule in _rules(args.props):
        match = PERIOD_RECORD.match(str(rule.get("record", "")))
        if match and int(match.group(1)) * 86400 > seconds:
            slo = get_path(rule, "labels", "slo", default="?")
            service = get_path(rule, "labels", "service", default="?")
            report_violation(
                f"SLO {slo!r} of service {service!r} has a {match.group(1)}d period but Prometheus keeps "
                f"{retention} of data ({RETENTION_ANNOTATION}): its error budget and remaining-budget gauge "
                "can never cover the whole period; raise the retention or use a shorter period",
                None,
            )


def _severities_by_slo(args: StackValidationArgs) -> dict[str, dict[str, set[str]]]:
    """service -> slo -> severities of its alerts, from the `service`, `slo` and `severity` rule labels."""
    found: dict[str, dict[str, set[str]]] = {}
    for resource in args.resources:
        if resource.resource_type != PROMETHEUS_RULE:
            continue
        for rule in _rules(resource.props):
            labels = get_path(rule, "labels", default={})
            if "alert" in rule and labels.get("service") and labels.get("slo"):
                slos = found.setdefault(str(labels["service"]), {})
                slos.setdefault(str(labels["slo"]), set()).add(str(labels.get("severity", "")))
    return found


def service_has_slo_alerts(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    covered = {
        service
        for service, slos in _severities_by_slo(args).items()
        if any({PAGE, TICKET} <= severities for severities in slos.values())
    }
    for chain in args.resources:
        if chain.resource_type == DELIVERY_CHAIN and chain.name not in covered:
            report_violation(
                f"service {chain.name!r} has no SLO with both a page and a ticket alert: add an entry to "
                "its slos (e.g. availability, objective 99.5, a ratio SLI of errors over total requests)",
                chain.urn,
            )


POLICIES: list[Policy] = [
    ResourceValidationPolicy(
        name="alert-severity-summary-runbook",
        description="Every alerting rule has a severity label and summary and runbook_url annotations.",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.MEDIUM,
        validate=alert_severity_summary_runbook,
    ),
    ResourceValidationPolicy(
        name="slo-objective-leaves-error-budget",
        description="Every SLO objective leaves an error budget that its page alert can detect burning.",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.MEDIUM,
        validate=slo_objective_leaves_error_budget,
    ),
    ResourceValidationPolicy(
        name="prometheus-rule-under-size-limit",
        description="Every PrometheusRule stays under the prometheus-operator's 512 KiB rule-file limit.",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.MEDIUM,
        validate=prometheus_rule_under_size_limit,
    ),
    ResourceValidationPolicy(
        name="slo-period-within-retention",
        description="Prometheus keeps at least an SLO period of data, so that its error budget covers it.",
        enforcement_level=EnforcementLevel.ADVISORY,
        severity=Severity.LOW,
        validate=slo_period_within_retention,
    ),
    StackValidationPolicy(
        name="service-has-slo-alerts",
        description="Every service of the stack has at least one SLO with page and ticket burn-rate alerts.",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.MEDIUM,
        validate=service_has_slo_alerts,
    ),
]
