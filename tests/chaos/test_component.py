"""ChaosSchedules under Pulumi's mock monitor, and the chaos objects a real `roadbike plan` writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from components.chaos.rbac import role_binding_manifest, role_manifest
from components.chaos.schedules import PAUSE_ANNOTATION, schedule_manifests
from roadbike.redact import redact
from tests.chaos.test_schedules import KUBERNETES_VERSION, schema_errors
from tests.helpers import by_name, of_type, parse, run_raw, stack_raw

COMPONENT = "roadbike:chaos:ChaosSchedules"
SCHEDULE = "kubernetes:chaos-mesh.org/v1alpha1:Schedule"
ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
CHAIN = "roadbike:chain:DeliveryChain"
NAMESPACE = "kubernetes:core/v1:Namespace"


def test_chaos_schedules_are_children_of_the_services_chain() -> None:
    run = run_raw(stack_raw("dev"), stack="dev")
    [component] = of_type(run, COMPONENT)
    chains = by_name(run, CHAIN)
    assert component.name == "go-http-server-chaos"
    assert component.parent == chains["go-http-server"].urn
    [namespace] = of_type(run, NAMESPACE)
    assert namespace.urn in component.dependencies

    schedules = of_type(run, SCHEDULE)
    assert sorted(s.name for s in schedules) == [
        "go-http-server-chaos-cpu-stress",
        "go-http-server-chaos-network-delay",
        "go-http-server-chaos-pod-kill",
    ]
    [role], [binding] = of_type(run, ROLE), of_type(run, ROLE_BINDING)
    for child in (*schedules, role, binding):
        assert child.parent == component.urn
    assert role.urn in binding.dependencies
    assert all(binding.urn in s.dependencies for s in schedules)


def test_recorded_objects_are_the_rendered_ones() -> None:
    raw = stack_raw("dev")
    run = run_raw(raw, stack="dev")
    config = parse(raw)
    service = config.services[0]
    recorded = {r.name: redact(r.inputs) for r in of_type(run, SCHEDULE)}
    for manifest in schedule_manifests(config, service):
        name = manifest["metadata"]["name"]
        assert recorded[name] == manifest, "explicit metadata.name, inputs exactly the renderer's"
    [role], [binding] = of_type(run, ROLE), of_type(run, ROLE_BINDING)
    assert redact(role.inputs) == role_manifest(config, service)
    assert redact(binding.inputs) == role_binding_manifest(config, service)


def test_services_without_chaos_get_no_component() -> None:
    run = run_raw(stack_raw("dev"), stack="dev")
    assert "orders-api-chaos" not in by_name(run, COMPONENT)
    prod = run_raw(stack_raw("prod"), stack="prod")
    assert of_type(prod, COMPONENT) == [] and of_type(prod, SCHEDULE) == []
    [namespace] = of_type(prod, NAMESPACE)
    assert "annotations" not in namespace.inputs["metadata"]


def test_namespace_lets_chaos_mesh_inject_when_there_is_chaos() -> None:
    run = run_raw(stack_raw("staging"), stack="staging")
    [namespace] = of_type(run, NAMESPACE)
    assert namespace.inputs["metadata"]["annotations"] == {"chaos-mesh.org/inject": "enabled"}


def test_frozen_error_budget_pauses_the_recorded_schedules() -> None:
    raw = stack_raw("dev")
    raw["services"][0]["errorBudgetFrozen"] = True
    run = run_raw(raw, stack="dev")
    schedules = of_type(run, SCHEDULE)
    assert len(schedules) == 3
    assert all(s.inputs["metadata"]["annotations"] == {PAUSE_ANNOTATION: "true"} for s in schedules)


def test_recorded_objects_validate_against_the_schemas() -> None:
    run = run_raw(stack_raw("dev"), stack="dev")
    for schedule in of_type(run, SCHEDULE):
        assert schema_errors(redact(schedule.inputs)) == []
    for rbac in (*of_type(run, ROLE), *of_type(run, ROLE_BINDING)):
        kubernetes_validate.validate(redact(rbac.inputs), KUBERNETES_VERSION, strict=True)


def test_plan_writes_valid_chaos_manifests(plans: dict[str, tuple[Path, Any]]) -> None:
    out, result = plans["dev"]
    assert result.returncode == 0, result.stdout + result.stderr
    folder = out / "k8s" / "delivery-dev"
    schedules = sorted(folder.glob("schedule-*.yaml"))
    assert [p.name for p in schedules] == [
        "schedule-go-http-server-chaos-cpu-stress.yaml",
        "schedule-go-http-server-chaos-network-delay.yaml",
        "schedule-go-http-server-chaos-pod-kill.yaml",
    ]
    for path in schedules:
        assert schema_errors(yaml.safe_load(path.read_text())) == [], path.name
    for name in ("role-go-http-server-chaos.yaml", "rolebinding-go-http-server-chaos.yaml"):
        kubernetes_validate.validate(
            yaml.safe_load((folder / name).read_text()), KUBERNETES_VERSION, strict=True
        )
    namespace = yaml.safe_load((folder / "namespace-delivery-dev.yaml").read_text())
    assert namespace["metadata"]["annotations"] == {"chaos-mesh.org/inject": "enabled"}
