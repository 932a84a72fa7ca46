"""The Grafana dashboard of each service: checked against Grafana's own dashboard types (@grafana/schema)
with the TypeScript compiler, its queries against the rules, its ConfigMap against Kubernetes."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from components.slo.dashboard import dashboard_config_map, grafana_dashboard
from components.slo.rules import rule_groups
from tests.helpers import REPO, STACKS, parse, stack_raw, type_check

KUBERNETES_VERSION = "1.37"
DASHBOARD_TYPES = Path("schema/dist/types/raw/dashboard/x/types.gen")


def grafana_types() -> Path:
    path = Path(os.environ.get("ROADBIKE_GRAFANA") or REPO / ".tools" / "grafana")
    if not (path / "stamp").is_file():
        raise AssertionError(
            f"no Grafana dashboard types in {path}: run `make tools` (npm: @grafana/schema, typescript)"
        )
    return path / DASHBOARD_TYPES


def type_errors(dashboards: list[dict[str, Any]], workdir: Path) -> str:
    """tsc's errors for the dashboards as literals of Grafana's `Dashboard` type (unknown keys are errors)."""
    source = workdir / "dashboards.ts"
    literals = "".join(
        f"export const dashboard{i}: Dashboard = {json.dumps(d, indent=2)};\n"
        for i, d in enumerate(dashboards)
    )
    source.write_text(f'import type {{ Dashboard }} from "{grafana_types().resolve()}";\n{literals}')
    return type_check(source)


def test_dashboards_of_every_stack_are_grafana_dashboards(tmp_path: Path) -> None:
    dashboards = []
    for stack in STACKS:
        config = parse(stack_raw(stack))
        dashboards += [grafana_dashboard(config, s) for s in config.services if s.slos]
    assert len(dashboards) >= len(STACKS)
    assert type_errors(dashboards, tmp_path) == ""


def test_type_check_refuses_what_is_not_a_dashboard(tmp_path: Path) -> None:
    config = parse(stack_raw("dev"))
    dashboard = grafana_dashboard(config, config.services[0])
    dashboard["panels"][1]["gridPos"]["width"] = 6
    dashboard["refresh"] = 60
    errors = type_errors([dashboard], tmp_path)
    assert """'"width"' does not exist in type 'GridPos'""" in errors
    assert "Type 'number' is not assignable to type 'string'" in errors


def test_each_slo_has_sli_burn_rate_budget_and_alert_panels() -> None:
    config = parse(stack_raw("dev"))
    service = config.services[0]
    dashboard = grafana_dashboard(config, service)
    titles = [p["title"] for p in dashboard["panels"]]
    for slo in service.slos:
        assert f"{slo.name}: error ratio per window (SLI)" in titles
        assert f"{slo.name}: burn rate per window" in titles
        assert f"{slo.name}: error budget left" in titles
        assert f"{slo.name}: alerts firing" in titles
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    records = {r["record"] for g in rule_groups(config, service) for r in g["rules"] if "record" in r}
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {name for expr in exprs for name in re.findall(r"\bslo:[a-z_]+:[a-z_0-9]+", expr)}
    assert used and used <= records, used - records
    assert any(e.startswith('ALERTS{namespace="delivery-dev",service="go-http-server"') for e in exprs)


@pytest.mark.parametrize("stack", STACKS)
def test_config_map_is_for_the_grafana_sidecar(stack: str) -> None:
    config = parse(stack_raw(stack))
    for service in config.services:
        manifest = dashboard_config_map(config, service)
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        assert manifest["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert manifest["metadata"]["namespace"] == config.kubernetes.namespace
        [text] = manifest["data"].values()
        assert json.loads(text) == grafana_dashboard(config, service)
