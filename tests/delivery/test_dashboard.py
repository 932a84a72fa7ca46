"""The delivery dashboard of every stack: Grafana's own dashboard types (tsc, as the SLO dashboards),
its queries against the delivery rules and the pushed facts, its ConfigMap against Kubernetes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import kubernetes_validate
import pytest

from components.delivery import metrics
from components.delivery.dashboard import dashboard_config_map, grafana_dashboard
from components.delivery.rules import rule_groups
from tests.helpers import STACKS, parse, stack_raw
from tests.slo.test_dashboard import KUBERNETES_VERSION, type_errors


def test_delivery_dashboards_of_every_stack_are_grafana_dashboards(tmp_path: Path) -> None:
    dashboards = [grafana_dashboard(parse(stack_raw(stack))) for stack in STACKS]
    assert type_errors(dashboards, tmp_path) == ""


def test_type_check_refuses_a_broken_delivery_dashboard(tmp_path: Path) -> None:
    dashboard = grafana_dashboard(parse(stack_raw("dev")))
    dashboard["panels"][0]["gridPos"]["width"] = 12
    assert """'"width"' does not exist in type 'GridPos'""" in type_errors([dashboard], tmp_path)


def test_panels_show_the_four_measures_tickets_and_last_releases() -> None:
    config = parse(stack_raw("prod"))
    dashboard = grafana_dashboard(config)
    titles = [p["title"] for p in dashboard["panels"]]
    for measure in ("Deployment frequency", "Lead time", "Change failure rate", "Time to restore"):
        assert any(t.startswith(measure) for t in titles), titles
    assert any(t.startswith("Delivery tickets firing") for t in titles)
    assert any(t.startswith("Last 20 releases") for t in titles)
    records = {r["record"] for g in rule_groups(config) for r in g["rules"] if "record" in r}
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for e in exprs for name in re.findall(r"\broadbike:delivery_[a-z_0-9]+:[a-z_0-9]+", e)}
    assert len(used) >= 4 and used <= records, used - records
    assert any(metrics.INFO in e and 'environment="prod"' in e for e in exprs)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("stack", STACKS)
def test_config_map_is_for_the_grafana_sidecar(stack: str) -> None:
    config = parse(stack_raw(stack))
    manifest = dashboard_config_map(config)
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    assert manifest["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert manifest["metadata"]["namespace"] == config.kubernetes.namespace
    [text] = manifest["data"].values()
    assert json.loads(text) == grafana_dashboard(config)
