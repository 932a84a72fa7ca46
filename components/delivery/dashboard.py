"""The delivery dashboard of a stack's environment: the four measures of every service with their
yellow and red levels, the delivery tickets firing, and the last releases with their outcome; as a
ConfigMap the Grafana sidecar of kube-prometheus-stack loads, next to the SLO dashboards.
"""

from __future__ import annotations

import json
from typing import Any

from components.config import StackConfig
from components.delivery import metrics
from components.delivery.rules import (
    LEAD_TIME_P90,
    MEASURES,
    RED,
    YELLOW,
    Measure,
    facts,
    recorded,
    rule_metadata,
    threshold_value,
)
from components.slo.dashboard import DATASOURCE, SCHEMA_VERSION, SIDECAR_LABEL
from components.slo.dashboard import panel as dashboard_panel

DASHBOARD_NAME = "delivery-dashboard"
FILE_NAME = "delivery.json"
PANEL_HEIGHT = 8
LAST_RELEASES = 20

UNITS = {"per day": "none", "duration": "s", "ratio": "percentunit"}
TITLES = {
    "deploymentFrequency": "Deployment frequency (deployments per day, 30d)",
    "leadTime": "Lead time for changes (median, 30d)",
    "changeFailureRate": "Change failure rate (30d)",
    "timeToRestore": "Time to restore (median, 30d)",
}


def _target(expr: str, legend: str, ref: int, **extra: Any) -> dict[str, Any]:
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend,
        "refId": chr(ord("A") + ref),
        **extra,
    }


def measure_panel(config: StackConfig, measure: Measure, position: dict[str, int]) -> dict[str, Any]:
    targets = [_target(recorded(measure.record, config), "{{service}}", 0)]
    if measure.key == "leadTime":
        targets.append(_target(recorded(LEAD_TIME_P90, config), "{{service}} p90", 1))
    for level in (YELLOW, RED):
        level_expr = f"vector({threshold_value(config, measure, level)})"
        targets.append(_target(level_expr, f"{level} level", len(targets)))
    return dashboard_panel("timeseries", TITLES[measure.key], UNITS[measure.unit], targets, position)


def grafana_dashboard(config: StackConfig) -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    for index, measure in enumerate(MEASURES):
        position = {"h": PANEL_HEIGHT, "w": 12, "x": 12 * (index % 2), "y": PANEL_HEIGHT * (index // 2)}
        panels.append(measure_panel(config, measure, position))
    top = 2 * PANEL_HEIGHT
    tickets = f'ALERTS{{alertname=~"Delivery.+",alertstate="firing",environment="{config.environment}"}}'
    panels.append(
        dashboard_panel(
            "state-timeline",
            "Delivery tickets firing (yellow and red levels)",
            "none",
            [_target(tickets, "{{service}} {{alertname}}", 0)],
            {"h": PANEL_HEIGHT, "w": 24, "x": 0, "y": top},
        )
    )
    releases = (
        f"topk({LAST_RELEASES}, {facts(metrics.END_TIME, config)} * on(service, environment, release) "
        f"group_left(version, commit, outcome) {facts(metrics.INFO, config)})"
    )
    panels.append(
        dashboard_panel(
            "table",
            f"Last {LAST_RELEASES} releases (end time, version, outcome)",
            "dateTimeAsIso",
            [_target(releases, "", 0, instant=True, format="table")],
            {"h": PANEL_HEIGHT, "w": 24, "x": 0, "y": top + PANEL_HEIGHT},
        )
    )
    for number, panel in enumerate(panels, start=1):
        panel["id"] = number
    return {
        "uid": f"delivery-{config.kubernetes.namespace}"[:40],
        "title": f"Delivery health ({config.environment}, {config.kubernetes.namespace})",
        "tags": ["delivery", "dora", "roadbike"],
        "schemaVersion": SCHEMA_VERSION,
        "editable": False,
        "time": {"from": "now-30d", "to": "now"},
        "refresh": "5m",
        "templating": {
            "list": [
                {"type": "datasource", "name": "datasource", "label": "Prometheus", "query": "prometheus"}
            ]
        },
        "panels": panels,
    }


def dashboard_config_map(config: StackConfig) -> dict[str, Any]:
    """The dashboard as the ConfigMap `delivery-dashboard` in the stack's namespace."""
    metadata = rule_metadata(config, DASHBOARD_NAME)
    metadata["labels"] = {**metadata["labels"], SIDECAR_LABEL[0]: SIDECAR_LABEL[1]}
    text = json.dumps(grafana_dashboard(config), indent=2, sort_keys=True) + "\n"
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {FILE_NAME: text}}
