"""DeliveryPlatform and DeliveryChain under Pulumi's mock monitor: types, names, parents, outputs."""

from __future__ import annotations

from collections import Counter

from components.kubernetes.namespace import namespace_manifest
from roadbike.program import is_secret
from tests.helpers import parse, run_raw, stack_raw


def test_resource_tree_for_dev() -> None:
    raw = stack_raw("dev")
    run = run_raw(raw, stack="dev")
    by_type = Counter(r.type for r in run.resources)
    services = len(raw["services"])
    assert by_type["roadbike:platform:DeliveryPlatform"] == 1
    assert by_type["roadbike:chain:DeliveryChain"] == services
    assert by_type["kubernetes:core/v1:Namespace"] == 1
    assert by_type["github:index/repository:Repository"] == services
    assert by_type["github:index/repositoryRuleset:RepositoryRuleset"] == services

    urns = {r.type + "::" + r.name: r for r in run.resources}
    platform = urns["roadbike:platform:DeliveryPlatform::roadbike"]
    chain = urns["roadbike:chain:DeliveryChain::go-http-server"]
    assert platform.parent == run.stack_urn
    assert (
        chain.urn
        == "urn:pulumi:dev::roadbike::roadbike:platform:DeliveryPlatform$roadbike:chain:DeliveryChain::go-http-server"
    )
    assert chain.parent == platform.urn
    assert urns["kubernetes:core/v1:Namespace::delivery-dev"].parent == platform.urn
    repository = urns["github:index/repository:Repository::go-http-server-repository"]
    assert repository.parent == chain.urn
    assert repository.inputs["vulnerabilityAlerts"] is True
    ruleset = urns["github:index/repositoryRuleset:RepositoryRuleset::go-http-server-default-branch"]
    assert ruleset.inputs["rules"]["nonFastForward"] is True
    assert repository.urn in ruleset.dependencies


def test_staging_and_prod_name_the_repositories_dev_creates() -> None:
    for stack in ("staging", "prod"):
        raw = stack_raw(stack)
        run = run_raw(raw, stack=stack)
        by_type = Counter(r.type for r in run.resources)
        services = len(raw["services"])
        assert by_type["roadbike:chain:DeliveryChain"] == services
        assert by_type["github:index/repository:Repository"] == 0, stack
        assert by_type["github:index/repositoryRuleset:RepositoryRuleset"] == 0, stack
        assert by_type["github:index/repositoryWebhook:RepositoryWebhook"] == 0, stack
        assert by_type["github:index/repositoryEnvironment:RepositoryEnvironment"] == services, stack
        assert by_type["github:index/repositoryFile:RepositoryFile"] == services, "its release workflow"
        repositories = {entry["repository"] for entry in run.outputs["services"].values()}
        assert repositories == {f"acme/{s['repository']}" for s in raw["services"]}


def test_namespace_has_restricted_pod_security_labels() -> None:
    run = run_raw(stack_raw("staging"), stack="staging")
    [namespace] = [r for r in run.resources if r.type == "kubernetes:core/v1:Namespace"]
    labels = namespace.inputs["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    assert namespace.inputs["metadata"]["name"] == "delivery-staging"


def test_namespace_renderer_is_pure_and_follows_config() -> None:
    raw = stack_raw("dev")
    raw["kubernetes"]["podSecurity"] = "baseline"
    manifest = namespace_manifest(parse(raw))
    assert manifest["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    assert manifest == namespace_manifest(parse(raw))


def test_stack_outputs_one_entry_per_service() -> None:
    raw = stack_raw("prod")
    run = run_raw(raw, stack="prod")
    services = run.outputs["services"]
    assert sorted(services) == sorted(s["name"] for s in raw["services"])
    entry = services["go-http-server"]
    assert entry["repository"] == "acme/go-http-server"
    assert entry["namespace"] == "delivery-prod"
    assert run.outputs["environment"] == "prod"
    assert not any(is_secret(v) for v in services.values())


def test_runs_do_not_leak_into_each_other() -> None:
    first = run_raw(stack_raw("dev"), stack="dev")
    second = run_raw(stack_raw("dev"), stack="dev")
    assert sorted(r.urn for r in first.resources) == sorted(r.urn for r in second.resources)
    assert len(first.resources) == len(second.resources)
