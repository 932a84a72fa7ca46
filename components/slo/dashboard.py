"""A Grafana dashboard per service: for each SLO its SLI, burn rate per window, budget burn-down and
alert state; as a ConfigMap the Grafana sidecar of kube-prometheus-stack loads (label grafana_dashboard).
"""

from __future__ import annotations

import json
from typing import Any

from components.config import Service, Slo, StackConfig
from components.naming import ServiceNames, service_names
from components.slo.burn_rates import WINDOWS, decimal_text, error_budget
from components.slo.rules import (
    BUDGET_REMAINING_RECORD,
    coverage_record,
    error_ratio_record,
    object_metadata,
    slo_labels,
    slo_series,
)

# The label kube-prometheus-stack's Grafana sidecar loads dashboards by (grafana.sidecar.dashboards.label).
SIDECAR_LABEL = ("grafana_dashboard", "1")


# Grafana's dashboard schema version the panels are written for (@grafana/schema 13).
SCHEMA_VERSION = 41


DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


PANEL_HEIGHT = 8


def _target(expr: str, legend: str, ref: int) -> dict[str, Any]:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + ref)}


def panel(
    kind: str, title: str, unit: str, targets: list[dict[str, Any]], position: dict[str, int]
) -> dict[str, Any]:
    return {
        "type": kind,
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": position,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "targets": targets,
    }


def slo_panels(names: ServiceNames, slo: Slo, top: int) -> list[dict[str, Any]]:
    """A row of four panels for one SLO, starting at grid row `top`."""
    labels = slo_labels(names, slo)
    budget = decimal_text(error_budget(slo))
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())

    def at(column: int) -> dict[str, int]:
        return {"h": PANEL_HEIGHT, "w": 6, "x": 6 * column, "y": top + 1}

    ratios = [_target(slo_series(error_ratio_record(w), labels), w, i) for i, w in enumerate(WINDOWS)]
    burns = [
        _target(f"{slo_series(error_ratio_record(w), labels)} / {budget}", w, i)
        for i, w in enumerate(WINDOWS)
    ]
    remaining = [
        _target(slo_series(BUDGET_REMAINING_RECORD, labels), "budget left", 0),
        _target(slo_series(coverage_record(slo.period), labels), f"share of {slo.period} with data", 1),
    ]
    alerts = [_target(f'ALERTS{{{selector},alertstate="firing"}}', "{{alertname}} {{long_window}}", 0)]
    return [
        {
            "type": "row",
            "title": f"{slo.name} ({slo.objective:g}% over {slo.period})",
            "collapsed": False,
            "panels": [],
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": top},
        },
        panel("timeseries", f"{slo.name}: error ratio per window (SLI)", "percentunit", ratios, at(0)),
        panel("timeseries", f"{slo.name}: burn rate per window", "none", burns, at(1)),
        panel("timeseries", f"{slo.name}: error budget left", "percentunit", remaining, at(2)),
        panel("state-timeline", f"{slo.name}: alerts firing", "none", alerts, at(3)),
    ]


def grafana_dashboard(config: StackConfig, service: Service) -> dict[str, Any]:
    names = service_names(config, service)
    panels: list[dict[str, Any]] = []
    for index, slo in enumerate(service.slos):
        panels += slo_panels(names, slo, index * (PANEL_HEIGHT + 1))
    for number, panel in enumerate(panels, start=1):
        panel["id"] = number
    return {
        "uid": f"slo-{names.namespace}-{names.service}"[:40],
        "title": f"SLOs of {names.service} ({names.namespace})",
        "tags": ["slo", "roadbike"],
        "schemaVersion": SCHEMA_VERSION,
        "editable": False,
        "time": {"from": "now-7d", "to": "now"},
        "refresh": "1m",
        "templating": {
            "list": [
                {"type": "datasource", "name": "datasource", "label": "Prometheus", "query": "prometheus"}
            ]
        },
        "panels": panels,
    }


def dashboard_file_name(service: Service) -> str:
    return f"{service.name}-slo.json"


def dashboard_config_map(config: StackConfig, service: Service) -> dict[str, Any]:
    """The dashboard as the ConfigMap `<service>-slo-dashboard` in the stack's namespace."""
    names = service_names(config, service)
    metadata = object_metadata(config, names, names.resource("slo-dashboard"), "slo-dashboard")
    metadata["labels"] = {**metadata["labels"], SIDECAR_LABEL[0]: SIDECAR_LABEL[1]}
    text = json.dumps(grafana_dashboard(config, service), indent=2, sort_keys=True) + "\n"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": {dashboard_file_name(service): text},
    }
