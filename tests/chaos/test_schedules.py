"""Chaos renderer and config: Chaos Mesh 2.8 schemas (unknown fields rejected), the seed scenario, gating."""

from __future__ import annotations

import copy
import re
from functools import cache
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from components.chaos.rbac import role_binding_manifest, role_manifest
from components.chaos.schedules import (
    APPROVAL_ANNOTATION,
    INJECT_ANNOTATION,
    KINDS,
    MAX_DURATION_ANNOTATION,
    PAUSE_ANNOTATION,
    schedule_manifest,
    schedule_manifests,
)
from components.config import ConfigError, StackConfig
from components.kubernetes.namespace import namespace_manifest
from components.naming import CHAOS_SCHEDULE_NAME_LIMIT
from tests.helpers import STACKS, crd_schema, parse, stack_raw, strict_schema

KUBERNETES_VERSION = "1.37"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@cache
def upstream_schema(kind: str) -> dict[str, Any]:
    return crd_schema("chaos-mesh.org/v1alpha1", kind)


@cache
def validator(kind: str, strict: bool = True) -> jsonschema.Draft4Validator:
    schema = strict_schema(upstream_schema(kind)) if strict else upstream_schema(kind)
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def schema_errors(document: dict[str, Any], strict: bool = True) -> list[str]:
    found = validator(document["kind"], strict).iter_errors(document)
    return sorted(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in found)


def embedded_object(schedule: dict[str, Any]) -> dict[str, Any]:
    """The experiment a Schedule creates, as a standalone object of its kind."""
    kind = schedule["spec"]["type"]
    key = {k: v for k, v in KINDS.values()}[kind]
    return {
        "apiVersion": schedule["apiVersion"],
        "kind": kind,
        "metadata": {"name": schedule["metadata"]["name"], "namespace": schedule["metadata"]["namespace"]},
        "spec": schedule["spec"][key],
    }


def kitchen_sink() -> StackConfig:
    """Every experiment type, an opt-in, a frozen budget and a name long enough to need shortening."""
    raw = stack_raw("dev")
    service = raw["services"][0]
    service["chaosOptIn"] = {"approval": "CHG-1234", "maxDuration": "5m"}
    service["errorBudgetFrozen"] = True
    service["chaos"].append(
        {"name": "x" * 63, "type": "pod-kill", "schedule": "*/10 * * * *", "gracePeriod": 5}
    )
    service["chaos"].append(
        {"name": "cpu-two-workers", "type": "cpu-stress", "schedule": "@hourly", "load": 50, "workers": 2}
    )
    return parse(raw)


def all_schedules() -> list[dict[str, Any]]:
    configs = [parse(stack_raw(stack)) for stack in STACKS] + [kitchen_sink()]
    return [
        m for config in configs for service in config.services for m in schedule_manifests(config, service)
    ]


def dev_schedule(experiment: str, config: StackConfig | None = None) -> dict[str, Any]:
    config = config or parse(stack_raw("dev"))
    service = config.services[0]
    [chosen] = [e for e in service.chaos if e.name == experiment]
    return schedule_manifest(config, service, chosen)


SCHEDULES = all_schedules()


def test_every_kind_of_experiment_is_covered() -> None:
    assert {s["spec"]["type"] for s in SCHEDULES} == {"NetworkChaos", "StressChaos", "PodChaos"}
    assert len(SCHEDULES) >= 8


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s["metadata"]["name"])
def test_rendered_schedule_validates_strictly(schedule: dict[str, Any]) -> None:
    assert schema_errors(schedule) == []
    assert schema_errors(embedded_object(schedule)) == []


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s["metadata"]["name"])
def test_schedule_metadata_is_what_the_schema_cannot_check(schedule: dict[str, Any]) -> None:
    name = schedule["metadata"]["name"]
    assert len(name) <= CHAOS_SCHEDULE_NAME_LIMIT and DNS_LABEL.match(name)
    assert schedule["spec"]["concurrencyPolicy"] == "Forbid"
    assert schedule["spec"]["historyLimit"] >= 1
    assert "startingDeadlineSeconds" not in schedule["spec"]


def typo(document: dict[str, Any], path: tuple[str, ...], key: str) -> dict[str, Any]:
    broken = copy.deepcopy(document)
    node = broken
    for step in path:
        node = node[step]
    node[key] = "oops"
    return broken


@pytest.mark.parametrize(
    ("path", "key"),
    [
        (("spec",), "concurrencyPolicyy"),
        (("spec", "networkChaos"), "durations"),
        (("spec", "networkChaos", "selector"), "labelSelector"),
        (("spec", "networkChaos", "delay"), "jiter"),
    ],
)
def test_a_typo_at_any_depth_is_rejected(path: tuple[str, ...], key: str) -> None:
    broken = typo(dev_schedule("network-delay"), path, key)
    assert schema_errors(broken, strict=False) == [], "the upstream schema alone lets typos through"
    [error] = schema_errors(broken)
    assert f"'{key}' was unexpected" in error
    assert error.startswith(".".join(path))


def test_typo_in_a_standalone_kind_is_rejected() -> None:
    broken = typo(embedded_object(dev_schedule("cpu-stress")), ("spec", "stressors", "cpu"), "laod")
    assert any("'laod' was unexpected" in e for e in schema_errors(broken))


SEED_POD_CHAOS = """
apiVersion: chaos-mesh.org/v1alpha1
kind: PodChaos
metadata: {name: network-delay, namespace: default}
spec:
  action: netem
  mode: one
  selector: {labelSelectors: {app: go-http-server}}
  netem: {delay: {latency: 100ms, jitter: 20ms, correlation: "25"}}
  duration: 60s
  scheduler: {cron: "@every 5m"}
"""


def test_the_seeds_chaos_yaml_is_refused() -> None:
    errors = " ".join(schema_errors(yaml.safe_load(SEED_POD_CHAOS)))
    assert "'netem', 'scheduler' were unexpected" in errors
    assert "'netem' is not one of ['pod-kill', 'pod-failure', 'container-kill']" in errors


def test_seed_network_delay_scenario() -> None:
    schedule = dev_schedule("network-delay")
    assert schedule == {
        "apiVersion": "chaos-mesh.org/v1alpha1",
        "kind": "Schedule",
        "metadata": {
            "name": "go-http-server-chaos-network-delay",
            "namespace": "delivery-dev",
            "labels": {
                "app": "go-http-server",
                "app.kubernetes.io/name": "go-http-server",
                "app.kubernetes.io/part-of": "roadbike",
                "app.kubernetes.io/managed-by": "roadbike",
                "roadbike.dev/environment": "dev",
                "roadbike.dev/chaos-experiment": "network-delay",
            },
        },
        "spec": {
            "schedule": "@every 5m",
            "concurrencyPolicy": "Forbid",
            "historyLimit": 3,
            "type": "NetworkChaos",
            "networkChaos": {
                "action": "delay",
                "mode": "all",
                "selector": {"namespaces": ["delivery-dev"], "labelSelectors": {"app": "go-http-server"}},
                "delay": {"latency": "100ms", "jitter": "20ms", "correlation": "25"},
                "direction": "to",
                "duration": "60s",
            },
        },
    }


def test_seed_cpu_stress_scenario() -> None:
    spec = dev_schedule("cpu-stress")["spec"]
    assert spec["type"] == "StressChaos"
    assert spec["stressChaos"] == {
        "mode": "all",
        "selector": {"namespaces": ["delivery-dev"], "labelSelectors": {"app": "go-http-server"}},
        "stressors": {"cpu": {"workers": 1, "load": 80}},
        "duration": "60s",
    }


def test_pod_kill_kills_one_pod_with_the_grace_period() -> None:
    spec = dev_schedule("pod-kill")["spec"]
    assert spec["type"] == "PodChaos"
    assert spec["podChaos"] == {
        "action": "pod-kill",
        "mode": "one",
        "selector": {"namespaces": ["delivery-dev"], "labelSelectors": {"app": "go-http-server"}},
        "gracePeriod": 30,
    }


def test_selectors_match_the_services_labels_and_namespace() -> None:
    config = parse(stack_raw("staging"))
    for service in config.services:
        for schedule in schedule_manifests(config, service):
            embedded = embedded_object(schedule)["spec"]
            assert embedded["selector"] == {
                "namespaces": [config.kubernetes.namespace],
                "labelSelectors": {"app": service.name},
            }
            assert schedule["metadata"]["labels"]["app"] == service.name


def test_long_names_are_shortened_deterministically() -> None:
    long_names = [s["metadata"]["name"] for s in SCHEDULES if len(s["metadata"]["name"]) == 57]
    assert long_names, "the kitchen sink has an experiment whose name needs shortening"
    config = kitchen_sink()
    service = config.services[0].model_copy(update={"name": "s" * 63})
    first = [m["metadata"]["name"] for m in schedule_manifests(config, service)]
    again = [m["metadata"]["name"] for m in schedule_manifests(config, service)]
    assert first == again
    assert len(set(first)) == len(first), "shortened names stay distinct"
    assert all(len(n) <= CHAOS_SCHEDULE_NAME_LIMIT and DNS_LABEL.match(n) for n in first)


def test_error_budget_freeze_pauses_every_schedule() -> None:
    raw = stack_raw("dev")
    raw["services"][0]["errorBudgetFrozen"] = True
    config = parse(raw)
    frozen = schedule_manifests(config, config.services[0])
    assert frozen and all(s["metadata"]["annotations"][PAUSE_ANNOTATION] == "true" for s in frozen)
    unfrozen = parse(stack_raw("dev"))
    running = schedule_manifests(unfrozen, unfrozen.services[0])
    assert all(PAUSE_ANNOTATION not in s["metadata"].get("annotations", {}) for s in running)


def test_prod_opt_in_is_carried_as_annotations() -> None:
    raw = stack_raw("dev")
    raw["services"][0]["chaosOptIn"] = {"approval": "CHG-1234", "maxDuration": "5m"}
    config = parse(raw)
    for schedule in schedule_manifests(config, config.services[0]):
        annotations = schedule["metadata"]["annotations"]
        assert annotations == {APPROVAL_ANNOTATION: "CHG-1234", MAX_DURATION_ANNOTATION: "5m"}


def test_namespace_is_annotated_only_when_the_stack_has_chaos() -> None:
    with_chaos = namespace_manifest(parse(stack_raw("dev")))
    assert with_chaos["metadata"]["annotations"] == {INJECT_ANNOTATION: "enabled"}
    raw = stack_raw("dev")
    for service in raw["services"]:
        service.pop("chaos", None)
    assert "annotations" not in namespace_manifest(parse(raw))["metadata"]


def test_rbac_is_namespaced_and_passes_kubernetes_validate_strict() -> None:
    config = parse(stack_raw("dev"))
    service = config.services[0]
    role, binding = role_manifest(config, service), role_binding_manifest(config, service)
    for manifest in (role, binding):
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        assert manifest["metadata"]["namespace"] == "delivery-dev"
    assert role["kind"] == "Role" and binding["kind"] == "RoleBinding"
    [rule] = role["rules"]
    assert rule["apiGroups"] == ["chaos-mesh.org"]
    assert set(rule["resources"]) == {"schedules", "networkchaos", "stresschaos", "podchaos"}
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "roadbike-deployer", "namespace": "delivery-dev"}
    ]


def test_a_typo_in_rbac_fails_kubernetes_validate_strict() -> None:
    config = parse(stack_raw("dev"))
    binding = role_binding_manifest(config, config.services[0])
    binding["subjects"][0]["nmae"] = "typo"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(binding, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(
    ("deployer", "subject"),
    [
        (
            {"kind": "Group", "name": "platform-deployers"},
            {"kind": "Group", "name": "platform-deployers", "apiGroup": "rbac.authorization.k8s.io"},
        ),
        (
            {"name": "ci", "namespace": "delivery-dev"},
            {"kind": "ServiceAccount", "name": "ci", "namespace": "delivery-dev"},
        ),
    ],
)
def test_rbac_subject_is_configurable(deployer: dict[str, str], subject: dict[str, str]) -> None:
    raw = stack_raw("dev")
    raw["kubernetes"]["deployer"] = deployer
    config = parse(raw)
    binding = role_binding_manifest(config, config.services[0])
    assert binding["subjects"] == [subject]
    kubernetes_validate.validate(binding, KUBERNETES_VERSION, strict=True)


def test_rendering_is_deterministic() -> None:
    def render() -> str:
        return yaml.safe_dump(all_schedules(), sort_keys=False)

    assert render() == render()


def config_problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(raw)
    return caught.value.problems


@pytest.mark.parametrize("schedule", ["@every 5m", "*/30 * * * *", "0 9 * * *", "@hourly", "0 21-23 * * *"])
def test_staging_refuses_a_schedule_that_runs_by_day(schedule: str) -> None:
    raw = stack_raw("staging")
    raw["services"][0]["chaos"][1]["schedule"] = schedule
    [problem] = config_problems(raw)
    assert "roadbike:services[0].chaos[1].schedule: staging runs chaos only at night" in problem
    assert repr(schedule) in problem


@pytest.mark.parametrize("schedule", ["0 2 * * *", "15 23 * * 1-5", "0 0 3 * * *", "@daily", "0 1,4 * * *"])
def test_staging_accepts_a_nightly_schedule(schedule: str) -> None:
    raw = stack_raw("staging")
    raw["services"][0]["chaos"][1]["schedule"] = schedule
    assert parse(raw).services[0].chaos[1].schedule == schedule


def test_dev_runs_chaos_at_any_time() -> None:
    assert parse(stack_raw("dev")).services[0].chaos[0].schedule == "@every 5m"


CONFIG_CASES = [
    (
        lambda s: s.update(chaosOptIn={"approval": "CHG-1"}),
        "roadbike:services[0].chaosOptIn.maxDuration: required key is missing",
    ),
    (
        lambda s: s.update(chaosOptIn={"approval": "CHG-1", "maxDuration": "5 minutes"}),
        "roadbike:services[0].chaosOptIn.maxDuration: '5 minutes' is not a Go duration",
    ),
    (
        lambda s: s.update(chaosOptIn={"approval": "", "maxDuration": "5m"}),
        "roadbike:services[0].chaosOptIn.approval",
    ),
    (
        lambda s: s.update(errorBudgetFrozen="maybe"),
        "roadbike:services[0].errorBudgetFrozen",
    ),
    (
        lambda s: s["chaos"][0].update(duration="5m"),
        "roadbike:services[0].chaos[0]: duration 5m must be shorter than the interval 5m",
    ),
    (
        lambda s: s["chaos"][0].update(latency="1m30s"),
        "roadbike:services[0].chaos[0].latency: '1m30s' must be one number and one unit",
    ),
]


@pytest.mark.parametrize(("change", "expected"), CONFIG_CASES)
def test_bad_chaos_config_names_the_key(change: Any, expected: str) -> None:
    raw = stack_raw("dev")
    change(raw["services"][0])
    problems = config_problems(raw)
    assert any(expected in p for p in problems), problems


def test_a_user_deployer_has_no_namespace() -> None:
    raw = stack_raw("dev")
    raw["kubernetes"]["deployer"] = {"kind": "User", "name": "ci", "namespace": "ci"}
    [problem] = config_problems(raw)
    assert "roadbike:kubernetes.deployer: a User has no namespace" in problem
