"""Pure renderers of a service's chaos experiments: Chaos Mesh 2.x Schedules.

Each experiment is one `Schedule` (chaos-mesh.org/v1alpha1) embedding a NetworkChaos delay, a StressChaos
CPU stressor or a PodChaos pod-kill. Selectors are the service's own labels in the stack's namespace, the
same ones its Deployment and SLO rules use. The objects carry the environment label and, in prod, the
service's opt-in as annotations, so that the policy pack (which sees only resources) can gate them.
"""

from __future__ import annotations

from typing import Any

from components.config import ChaosExperiment, Service, StackConfig
from components.naming import ServiceNames, service_names

API_VERSION = "chaos-mesh.org/v1alpha1"


SCHEDULE_KIND = "Schedule"


CONCURRENCY_POLICY = "Forbid"


HISTORY_LIMIT = 3


PAUSE_ANNOTATION = "experiment.chaos-mesh.org/pause"


APPROVAL_ANNOTATION = "roadbike.dev/chaos-approval"


MAX_DURATION_ANNOTATION = "roadbike.dev/chaos-max-duration"


EXPERIMENT_LABEL = "roadbike.dev/chaos-experiment"


# Chaos Mesh's namespace filter (controllerManager.enableFilterNamespace) only injects where this is set.
INJECT_ANNOTATION = "chaos-mesh.org/inject"


# experiment type -> (Chaos Mesh kind, key of the embedded spec in a Schedule)
KINDS: dict[str, tuple[str, str]] = {
    "network-delay": ("NetworkChaos", "networkChaos"),
    "cpu-stress": ("StressChaos", "stressChaos"),
    "pod-kill": ("PodChaos", "podChaos"),
}


DEFAULT_CPU_WORKERS = 1


DEFAULT_GRACE_PERIOD = 0


def chaos_enabled(config: StackConfig) -> bool:
    return any(service.chaos for service in config.services)


def namespace_annotations(config: StackConfig) -> dict[str, str]:
    """What the stack's Namespace needs so that Chaos Mesh may inject into it (nothing without chaos)."""
    return {INJECT_ANNOTATION: "enabled"} if chaos_enabled(config) else {}


def selector(names: ServiceNames) -> dict[str, Any]:
    return {"namespaces": [names.namespace], "labelSelectors": dict(names.selector)}


def network_delay_spec(names: ServiceNames, experiment: ChaosExperiment) -> dict[str, Any]:
    delay: dict[str, Any] = {"latency": experiment.latency}
    if experiment.jitter is not None:
        delay["jitter"] = experiment.jitter
    if experiment.correlation is not None:
        delay["correlation"] = str(experiment.correlation)
    return {
        "action": "delay",
        "mode": "all",
        "selector": selector(names),
        "delay": delay,
        "direction": "to",
        "duration": experiment.duration,
    }


def cpu_stress_spec(names: ServiceNames, experiment: ChaosExperiment) -> dict[str, Any]:
    workers = experiment.workers if experiment.workers is not None else DEFAULT_CPU_WORKERS
    return {
        "mode": "all",
        "selector": selector(names),
        "stressors": {"cpu": {"workers": workers, "load": experiment.load}},
        "duration": experiment.duration,
    }


def pod_kill_spec(names: ServiceNames, experiment: ChaosExperiment) -> dict[str, Any]:
    """One pod at a time; pod-kill is one-shot, so it has no duration."""
    grace = experiment.grace_period if experiment.grace_period is not None else DEFAULT_GRACE_PERIOD
    return {"action": "pod-kill", "mode": "one", "selector": selector(names), "gracePeriod": grace}


SPEC_RENDERERS = {
    "network-delay": network_delay_spec,
    "cpu-stress": cpu_stress_spec,
    "pod-kill": pod_kill_spec,
}


def schedule_annotations(service: Service) -> dict[str, str]:
    annotations: dict[str, str] = {}
    if service.chaos_opt_in is not None:
        annotations[APPROVAL_ANNOTATION] = service.chaos_opt_in.approval
        annotations[MAX_DURATION_ANNOTATION] = service.chaos_opt_in.max_duration
    if service.error_budget_frozen:
        annotations[PAUSE_ANNOTATION] = "true"
    return annotations


def schedule_manifest(config: StackConfig, service: Service, experiment: ChaosExperiment) -> dict[str, Any]:
    names = service_names(config, service)
    kind, spec_key = KINDS[experiment.type]
    metadata: dict[str, Any] = {
        "name": names.chaos_schedule(experiment.name),
        "namespace": names.namespace,
        "labels": {**names.labels, EXPERIMENT_LABEL: experiment.name},
    }
    annotations = schedule_annotations(service)
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": API_VERSION,
        "kind": SCHEDULE_KIND,
        "metadata": metadata,
        "spec": {
            "schedule": experiment.schedule,
            "concurrencyPolicy": CONCURRENCY_POLICY,
            "historyLimit": HISTORY_LIMIT,
            "type": kind,
            spec_key: SPEC_RENDERERS[experiment.type](names, experiment),
        },
    }


def schedule_manifests(config: StackConfig, service: Service) -> list[dict[str, Any]]:
    return [schedule_manifest(config, service, experiment) for experiment in service.chaos]
