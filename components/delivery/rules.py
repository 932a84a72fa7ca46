"""The four DORA measures as Prometheus recording rules, per service and environment, and their yellow
and red levels as ticket alerts; from the facts each release pushes (components.delivery.metrics).

- deployment frequency: successful releases over the window, per day;
- lead time for changes: commit time to release end of the successful releases (median and p90);
- change failure rate: the share of successful releases followed, within the failure window, by a page
  alert of the service (one that started after the release) or a failed SLI gate of the service (an
  Argo Rollouts AnalysisRun of its Rollout first seen failed or errored after the release);
- time to restore: how long the page alerts of the service lasted (median of the incidents that ended).

Incidents are tracked by the rules themselves (their start carried forward from one evaluation to the
next), so the group runs at a fixed interval, which the durations count in.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from components.config import (
    DELIVERY_WINDOW,
    DeliveryConfig,
    Service,
    StackConfig,
    prometheus_duration_seconds,
)
from components.delivery import metrics
from components.naming import platform_labels, runbook_url
from components.slo.burn_rates import PAGE, TICKET, decimal_text

GROUP = "roadbike-delivery"
RULE_NAME = "delivery-health"
COMPONENT = "delivery-health"
KEY = "service, environment"
RELEASE_KEY = "service, environment, release"
DAY_SECONDS = 86400

DEPLOYMENTS = "roadbike:delivery_deployments:count30d"
DEPLOYMENT_FREQUENCY = "roadbike:delivery_deployment_frequency:per_day30d"
LEAD_TIME_P50 = "roadbike:delivery_lead_time_seconds:p50_30d"
LEAD_TIME_P90 = "roadbike:delivery_lead_time_seconds:p90_30d"
PAGING = "roadbike:delivery_paging"
INCIDENT_START = "roadbike:delivery_incident_start_time_seconds"
INCIDENT_DURATION = "roadbike:delivery_incident_duration_seconds"
RESTORE = "roadbike:delivery_restore_seconds"
TIME_TO_RESTORE_P50 = "roadbike:delivery_time_to_restore_seconds:p50_30d"
GATE_FAILED = "roadbike:delivery_gate_failed"
GATE_FAILURE_TIME = "roadbike:delivery_gate_failure_time_seconds"
RELEASE_FAILED = "roadbike:delivery_release_failed"
FAILED_CHANGES = "roadbike:delivery_failed_changes:count30d"
CHANGE_FAILURE_RATE = "roadbike:delivery_change_failure_rate:ratio30d"

YELLOW, RED = "yellow", "red"

# What the Argo Rollouts controller exports of each AnalysisRun (controller/metrics, v1.9.1):
# analysis_run_info{namespace, name, phase} = 1, phase its current one.
ANALYSIS_RUN_INFO = "analysis_run_info"
GATE_FAILED_PHASES = ("Failed", "Error")
# The name of a canary step's run: <rollout>-<pod template hash>-<revision>-<step index>, `.<n>` added on
# a name collision (rollout/analysis.go, utils/analysis/helpers.go); the hash is in the alphabet of
# Kubernetes' rand.SafeEncodeString. The Rollout has the service's name.
STEP_RUN_NAME = "(.+)-[bcdfghjklmnpqrstvwxz2456789]+-[0-9]+-[0-9]+([.][0-9]+)?"


@dataclass(frozen=True)
class Measure:
    """One DORA measure's alerts: the record, its name, and whether higher values are worse."""

    key: str
    title: str
    record: str
    higher_is_worse: bool
    unit: str  # how $value reads in the summary


MEASURES = (
    Measure("deploymentFrequency", "DeploymentFrequency", DEPLOYMENT_FREQUENCY, False, "per day"),
    Measure("leadTime", "LeadTime", LEAD_TIME_P50, True, "duration"),
    Measure("changeFailureRate", "ChangeFailureRate", CHANGE_FAILURE_RATE, True, "ratio"),
    Measure("timeToRestore", "TimeToRestore", TIME_TO_RESTORE_P50, True, "duration"),
)


def seconds_text(duration: str) -> str:
    return decimal_text(Decimal(repr(prometheus_duration_seconds(duration))))


def delivery(config: StackConfig) -> DeliveryConfig:
    if config.delivery is None:
        raise ValueError("the stack has no roadbike:delivery section")
    return config.delivery


def facts(name: str, config: StackConfig) -> str:
    return f'{name}{{job="{metrics.PUSH_JOB}",environment="{config.environment}"}}'


def recorded(name: str, config: StackConfig) -> str:
    return f'{name}{{environment="{config.environment}"}}'


def _deployed(config: StackConfig) -> str:
    """The end times of the successful releases within the window, one series per release."""
    window = seconds_text(DELIVERY_WINDOW)
    return (
        f"({facts(metrics.END_TIME, config)} > time() - {window}) "
        f"and on({RELEASE_KEY}) ({facts(metrics.SUCCEEDED, config)} == 1)"
    )


def _failed_gate_runs(config: StackConfig) -> str:
    """The failed or errored step runs in the stack's namespace, with the service (the Rollout's name).

    Scraped without honorLabels (the Argo Rollouts chart's ServiceMonitor), the run's namespace is
    `exported_namespace` and `namespace` the controller's; with honorLabels it is `namespace`."""
    phases = "|".join(GATE_FAILED_PHASES)
    namespace = config.kubernetes.namespace
    runs = f'phase=~"{phases}",name=~"{STEP_RUN_NAME}"'
    selected = (
        f'{ANALYSIS_RUN_INFO}{{{runs},exported_namespace="{namespace}"}} '
        f'or {ANALYSIS_RUN_INFO}{{{runs},exported_namespace="",namespace="{namespace}"}}'
    )
    by_service = f'label_replace({selected}, "service", "$1", "name", "{STEP_RUN_NAME}")'
    return (
        f'label_replace(max by (service, name) ({by_service}), "environment", "{config.environment}", "", "")'
    )


def _record(record: str, expr: str) -> dict[str, Any]:
    return {"record": record, "expr": expr}


def recording_rules(config: StackConfig) -> list[dict[str, Any]]:
    settings = delivery(config)
    interval = seconds_text(settings.evaluation_interval)
    window_days = decimal_text(Decimal(prometheus_duration_seconds(DELIVERY_WINDOW)) / DAY_SECONDS)
    deployed = _deployed(config)
    failure_window = seconds_text(settings.failure_window)
    lead_times = (
        f"({facts(metrics.END_TIME, config)} - on({RELEASE_KEY}) {facts(metrics.COMMIT_TIME, config)}) "
        f"and on({RELEASE_KEY}) ({deployed})"
    )
    page_alerts = f'ALERTS{{alertstate="firing",severity="{PAGE}",namespace="{config.kubernetes.namespace}"}}'
    return [
        _record(
            DEPLOYMENTS,
            f"count by ({KEY}) ({deployed}) or 0 * count by ({KEY}) ({facts(metrics.END_TIME, config)})",
        ),
        _record(DEPLOYMENT_FREQUENCY, f"{recorded(DEPLOYMENTS, config)} / {window_days}"),
        _record(LEAD_TIME_P50, f"quantile by ({KEY}) (0.5, {lead_times})"),
        _record(LEAD_TIME_P90, f"quantile by ({KEY}) (0.9, {lead_times})"),
        # 1 while a page alert of the service fires (the SLO alerts carry namespace and service)
        _record(
            PAGING,
            f'label_replace(max by (service) ({page_alerts}), "environment", "{config.environment}", "", "")',
        ),
        # the incident's start: carried forward while it pages, the evaluation's time when it starts
        _record(
            INCIDENT_START,
            f"({recorded(INCIDENT_START, config)} offset {settings.evaluation_interval} "
            f"and on({KEY}) {recorded(PAGING, config)}) "
            f"or on({KEY}) (0 * {recorded(PAGING, config)} + time())",
        ),
        # each evaluation that pages counts for one interval
        _record(INCIDENT_DURATION, f"time() - {recorded(INCIDENT_START, config)} + {interval}"),
        # one sample per incident, at the first evaluation after it ended: how long it lasted
        _record(
            RESTORE,
            f"{recorded(INCIDENT_DURATION, config)} offset {settings.evaluation_interval} "
            f"unless on({KEY}) {recorded(PAGING, config)}",
        ),
        _record(
            TIME_TO_RESTORE_P50,
            f"quantile_over_time(0.5, {recorded(RESTORE, config)}[{DELIVERY_WINDOW}])",
        ),
        # 1 per failed or errored SLI-gate run of the service, while the controller reports it
        _record(GATE_FAILED, _failed_gate_runs(config)),
        # the evaluation's time when a run is first seen failed; a run already seen failed within the
        # window (before a scrape gap or a controller restart) is not a new failure
        _record(
            GATE_FAILURE_TIME,
            f"max by ({KEY}) (0 * ({recorded(GATE_FAILED, config)} unless on({KEY}, name) "
            f"max_over_time({recorded(GATE_FAILED, config)}[{DELIVERY_WINDOW}] offset {settings.evaluation_interval}))) "
            f"+ time()",
        ),
        # per release: seconds from its end to the start of a page alert, or to an SLI gate failing,
        # within the failure window
        _record(
            RELEASE_FAILED,
            f"(({recorded(INCIDENT_START, config)} - on({KEY}) group_right() ({deployed})) >= 0 <= {failure_window}) "
            f"or (({recorded(GATE_FAILURE_TIME, config)} - on({KEY}) group_right() ({deployed})) >= 0 "
            f"<= {failure_window})",
        ),
        _record(
            FAILED_CHANGES,
            f"count by ({KEY}) (max_over_time({recorded(RELEASE_FAILED, config)}[{DELIVERY_WINDOW}]) "
            f"and on({RELEASE_KEY}) ({deployed})) or 0 * {recorded(DEPLOYMENTS, config)}",
        ),
        _record(
            CHANGE_FAILURE_RATE,
            f"{recorded(FAILED_CHANGES, config)} / ({recorded(DEPLOYMENTS, config)} > 0)",
        ),
    ]


def threshold_band(config: StackConfig, measure: Measure) -> Any:
    """The measure's band (a DurationBand, or a PercentBand for the change failure rate) in the stack's
    delivery thresholds: the field whose config key is the measure's."""
    thresholds = delivery(config).thresholds
    [field] = [name for name, info in type(thresholds).model_fields.items() if info.alias == measure.key]
    return getattr(thresholds, field)


def threshold_value(config: StackConfig, measure: Measure, level: str) -> str:
    """The level as PromQL: deployments per day, seconds, or a ratio."""
    band = threshold_band(config, measure)
    value = getattr(band, level)
    if measure.key == "deploymentFrequency":
        return f"{DAY_SECONDS} / {seconds_text(value)}"
    if measure.key == "changeFailureRate":
        return decimal_text(Decimal(repr(value)) / 100)
    return seconds_text(value)


def threshold_text(config: StackConfig, measure: Measure, level: str) -> str:
    band = threshold_band(config, measure)
    value = getattr(band, level)
    if measure.key == "deploymentFrequency":
        return f"fewer than one deployment per {value}"
    if measure.key == "changeFailureRate":
        return f"above {value:g}%"
    return f"longer than {value}"


def alert_name(measure: Measure, level: str) -> str:
    return f"Delivery{measure.title}{level.capitalize()}"


ALERT_FOR = "1h"

VALUE_TEMPLATES = {
    "per day": '{{ $value | printf "%.3g" }} deployments per day',
    "duration": "{{ $value | humanizeDuration }}",
    "ratio": "{{ $value | humanizePercentage }}",
}


def alert_rules(config: StackConfig, service: Service) -> list[dict[str, Any]]:
    rules = []
    for measure in MEASURES:
        series = f'{measure.record}{{service="{service.name}",environment="{config.environment}"}}'
        worse = ">" if measure.higher_is_worse else "<"
        better_or_equal = "<=" if measure.higher_is_worse else ">="
        red = threshold_value(config, measure, RED)
        yellow = threshold_value(config, measure, YELLOW)
        exprs = {
            RED: f"{series} {worse} ({red})",
            YELLOW: f"{series} {worse} ({yellow}) and {series} {better_or_equal} ({red})",
        }
        for level in (YELLOW, RED):
            rules.append(
                {
                    "alert": alert_name(measure, level),
                    "expr": exprs[level],
                    "for": ALERT_FOR,
                    "labels": {
                        "severity": TICKET,
                        "delivery_level": level,
                        "namespace": config.kubernetes.namespace,
                        "service": service.name,
                        "environment": config.environment,
                    },
                    "annotations": {
                        "summary": (
                            f"{service.name} in {config.environment}: {measure.key} is "
                            f"{VALUE_TEMPLATES[measure.unit]} over {DELIVERY_WINDOW}, "
                            f"{threshold_text(config, measure, level)} ({level})"
                        ),
                        "runbook_url": runbook_url(
                            config, service, f"delivery-{measure.key}", f"delivery-{measure.key}"
                        ),
                    },
                }
            )
    return rules


def recording_group(config: StackConfig) -> dict[str, Any]:
    return {"name": GROUP, "interval": delivery(config).evaluation_interval, "rules": recording_rules(config)}


def alert_group(config: StackConfig, service: Service) -> dict[str, Any]:
    """The service's own tickets: a group (and a PrometheusRule) that comes and goes with the service."""
    return {
        "name": f"{GROUP}-{service.name}",
        "interval": delivery(config).evaluation_interval,
        "rules": alert_rules(config, service),
    }


def rule_groups(config: StackConfig) -> list[dict[str, Any]]:
    """Every delivery group of the stack: the measures, then each service's tickets."""
    return [recording_group(config), *(alert_group(config, s) for s in config.services)]


def rule_metadata(config: StackConfig, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": config.kubernetes.namespace,
        "labels": {
            **platform_labels(config),
            "app.kubernetes.io/component": COMPONENT,
            **config.prometheus.rule_selector_labels,
        },
    }


def _rule(metadata: dict[str, Any], groups: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata,
        "spec": {"groups": groups},
    }


def prometheus_rule(config: StackConfig) -> dict[str, Any]:
    """`delivery-health`: the recording rules of the four measures, for every service of the stack."""
    return _rule(rule_metadata(config, RULE_NAME), [recording_group(config)])


def alerts_rule_name(service: Service) -> str:
    return f"{service.name}-delivery"


def alerts_prometheus_rule(config: StackConfig, service: Service) -> dict[str, Any]:
    """`<service>-delivery`: the service's yellow and red tickets."""
    return _rule(rule_metadata(config, alerts_rule_name(service)), [alert_group(config, service)])
