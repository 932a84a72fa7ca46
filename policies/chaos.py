"""Policies on Chaos Mesh objects: prod needs an opt-in, experiments are short, scoped and never pile up.

They apply to Schedules (the experiment embedded in `spec.<kind>`) and to bare NetworkChaos, StressChaos and
PodChaos objects. The environment comes from the object's own `roadbike.dev/environment` label; an object
without it is treated as prod, so a missing label never lets chaos through.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
)

from policies.resource_types import CHAOS_SCHEDULE, NETWORK_CHAOS, POD_CHAOS, STRESS_CHAOS
from policies.util import as_list, get_path

CHAOS_TYPES = {CHAOS_SCHEDULE, NETWORK_CHAOS, STRESS_CHAOS, POD_CHAOS}
ENVIRONMENT_LABEL = "roadbike.dev/environment"
SERVICE_LABEL = "app"
APPROVAL_ANNOTATION = "roadbike.dev/chaos-approval"
MAX_DURATION_ANNOTATION = "roadbike.dev/chaos-max-duration"
ENVIRONMENTS_WITHOUT_OPT_IN = {"dev", "staging"}
DEFAULT_MAX_DURATION = "10m"
MAX_DURATION_PROPERTY = "maxDuration"
# PodChaos actions that act once and have nothing to undo: they need no duration.
ONE_SHOT_POD_ACTIONS = {"pod-kill", "container-kill"}
# Schedule.spec.type -> the key of the embedded spec (Chaos Mesh 2.x).
EMBEDDED_KEYS = {
    "AWSChaos": "awsChaos",
    "AzureChaos": "azureChaos",
    "BlockChaos": "blockChaos",
    "DNSChaos": "dnsChaos",
    "GCPChaos": "gcpChaos",
    "HTTPChaos": "httpChaos",
    "IOChaos": "ioChaos",
    "JVMChaos": "jvmChaos",
    "KernelChaos": "kernelChaos",
    "NetworkChaos": "networkChaos",
    "PhysicalMachineChaos": "physicalmachineChaos",
    "PodChaos": "podChaos",
    "StressChaos": "stressChaos",
    "TimeChaos": "timeChaos",
    "Workflow": "workflow",
}

# time.ParseDuration syntax, e.g. "60s", "1m30s", "100ms".
GO_DURATION = re.compile(r"^(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+$")
GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
GO_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration_seconds(value: Any) -> float | None:
    """Seconds in a Go duration string; None when it is not one."""
    if not isinstance(value, str) or not GO_DURATION.match(value):
        return None
    return sum(float(number) * GO_UNIT_SECONDS[unit] for number, unit in GO_DURATION_PART.findall(value))


def describe(args: ResourceValidationArgs) -> str:
    kind = get_path(args.props, "kind", default=args.resource_type.rsplit(":", 1)[-1])
    return f"{kind} {get_path(args.props, 'metadata', 'name', default=args.name)!r}"


def experiment(args: ResourceValidationArgs) -> tuple[str, Mapping[str, Any]]:
    """(kind, spec) of the experiment a chaos object runs: a Schedule's embedded spec or the object's own."""
    if args.resource_type == CHAOS_SCHEDULE:
        kind = str(get_path(args.props, "spec", "type", default=""))
        return kind, get_path(args.props, "spec", EMBEDDED_KEYS.get(kind, "-"), default={})
    return args.resource_type.rsplit(":", 1)[-1], get_path(args.props, "spec", default={})


def needs_duration(kind: str, spec: Mapping[str, Any]) -> bool:
    return not (kind == "PodChaos" and spec.get("action") in ONE_SHOT_POD_ACTIONS)


def chaos_prod_opt_in(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type not in CHAOS_TYPES:
        return
    environment = get_path(args.props, "metadata", "labels", ENVIRONMENT_LABEL)
    if environment in ENVIRONMENTS_WITHOUT_OPT_IN:
        return
    annotations = get_path(args.props, "metadata", "annotations", default={})
    approval = annotations.get(APPROVAL_ANNOTATION)
    max_duration = annotations.get(MAX_DURATION_ANNOTATION)
    where = (
        f"{describe(args)} runs in the {environment!r} environment"
        if environment
        else f"{describe(args)} has no {ENVIRONMENT_LABEL} label, so it counts as prod, and runs"
    )
    if not approval or go_duration_seconds(max_duration) is None:
        report_violation(
            f"{where} without an opt-in: give the service `chaosOptIn: {{approval: <change id>, "
            f"maxDuration: <Go duration>}}` in the stack config (annotations {APPROVAL_ANNOTATION} and "
            f"{MAX_DURATION_ANNOTATION}), or remove its chaos entries",
            None,
        )
        return
    _, spec = experiment(args)
    duration = spec.get("duration")
    limit = go_duration_seconds(max_duration) or 0.0
    seconds = go_duration_seconds(duration)
    if seconds is not None and seconds > limit:
        report_violation(
            f"{where} for {duration}, longer than its opt-in {approval} allows ({max_duration}): "
            "shorten the experiment's duration or get a new approval with a longer maxDuration",
            None,
        )


def configured_cap(args: ResourceValidationArgs) -> str:
    config = args.get_config() or {}
    return str(config.get(MAX_DURATION_PROPERTY, DEFAULT_MAX_DURATION))


def chaos_duration_cap(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type not in CHAOS_TYPES:
        return
    cap = configured_cap(args)
    cap_seconds = go_duration_seconds(cap)
    if cap_seconds is None:
        report_violation(
            f"the policy config {MAX_DURATION_PROPERTY}={cap!r} is not a Go duration (e.g. 10m)", None
        )
        return
    kind, spec = experiment(args)
    duration = spec.get("duration")
    if duration is None:
        if needs_duration(kind, spec):
            report_violation(
                f"{describe(args)} has no duration, so its {kind or 'experiment'} runs until deleted: "
                f"set a duration of at most {cap}",
                None,
            )
        return
    seconds = go_duration_seconds(duration)
    if seconds is None or seconds > cap_seconds:
        report_violation(
            f"{describe(args)} runs its {kind} for {duration!r}; the cap is {cap}: set a shorter duration "
            # --policy-pack-config takes a path, as in the Pulumi CLI: the hint is two commands that work.
            f'(or raise the cap: echo \'{{"chaos-duration-cap": {{"{MAX_DURATION_PROPERTY}": "15m"}}}}\' '
            "> policy-config.json, then plan with --policy-pack-config policy-config.json)",
            None,
        )


def selector_problems(selector: Any, namespace: str, service: str | None) -> list[str]:
    if not isinstance(selector, Mapping) or not selector:
        return ["has an empty selector"]
    problems = []
    namespaces = [str(n) for n in as_list(selector.get("namespaces"))]
    if namespaces != [namespace]:
        problems.append(f"selects namespaces {namespaces} instead of exactly its own [{namespace!r}]")
    foreign_pods = sorted(str(ns) for ns in (selector.get("pods") or {}) if ns != namespace)
    if foreign_pods:
        problems.append(f"selects pods in other namespaces {foreign_pods}")
    labels = selector.get("labelSelectors") or {}
    if not labels:
        problems.append("selects no labels, i.e. every pod of the namespace")
    elif service is None:
        problems.append(f"has no {SERVICE_LABEL!r} label naming the service it belongs to")
    elif labels.get(SERVICE_LABEL) != service:
        problems.append(
            f"selects {SERVICE_LABEL}={labels.get(SERVICE_LABEL)!r}, not its own service "
            f"{SERVICE_LABEL}={service!r}"
        )
    return problems


def chaos_selector_scoped(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type not in CHAOS_TYPES:
        return
    namespace = str(get_path(args.props, "metadata", "namespace", default=""))
    service = get_path(args.props, "metadata", "labels", SERVICE_LABEL)
    _, spec = experiment(args)
    problems = [] if namespace else ["has no metadata.namespace"]
    problems += selector_problems(spec.get("selector"), namespace, service)
    if spec.get("target") is not None:
        problems += [
            f"target {p}" for p in selector_problems(get_path(spec, "target", "selector"), namespace, service)
        ]
    for problem in problems:
        report_violation(
            f"{describe(args)} {problem}: select only the service's pods with selector.namespaces: "
            f"[<its namespace>] and selector.labelSelectors: {{{SERVICE_LABEL}: <service>}}",
            None,
        )


def chaos_schedule_concurrency_forbid(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    if args.resource_type != CHAOS_SCHEDULE:
        return
    policy = get_path(args.props, "spec", "concurrencyPolicy")
    if policy != "Forbid":
        report_violation(
            f"{describe(args)} has concurrencyPolicy {policy!r}: set it to 'Forbid' explicitly so that "
            "experiments never overlap",
            None,
        )


POLICIES: list[Policy] = [
    ResourceValidationPolicy(
        name="chaos-prod-opt-in",
        description="Chaos in prod only for services that opted in with an approval and a maximum duration.",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.CRITICAL,
        validate=chaos_prod_opt_in,
    ),
    ResourceValidationPolicy(
        name="chaos-duration-cap",
        description="Every chaos experiment has a duration of at most the configured cap (default 10m).",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
        validate=chaos_duration_cap,
        config_schema=PolicyConfigSchema(
            properties={
                MAX_DURATION_PROPERTY: {
                    "type": "string",
                    "pattern": GO_DURATION.pattern,
                    "default": DEFAULT_MAX_DURATION,
                    "description": "the longest experiment allowed, a Go duration (e.g. 10m, 1h30m)",
                }
            }
        ),
    ),
    ResourceValidationPolicy(
        name="chaos-selector-scoped",
        description="Chaos selects only its own service's pods: its namespace and app label, never an empty selector.",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
        validate=chaos_selector_scoped,
    ),
    ResourceValidationPolicy(
        name="chaos-schedule-concurrency-forbid",
        description="Chaos Mesh Schedules set concurrencyPolicy: Forbid, so experiments never overlap.",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.MEDIUM,
        validate=chaos_schedule_concurrency_forbid,
    ),
]
