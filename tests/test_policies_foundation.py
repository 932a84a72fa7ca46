"""Foundation policies through the real pack over the Analyzer protocol: one passing, one violating case each."""

from __future__ import annotations

from roadbike.analyzer import PolicyPackProcess
from tests.helpers import analyze_resources, resource, violated

NAMESPACE = "kubernetes:core/v1:Namespace"
REPOSITORY = "github:index/repository:Repository"
RULESET = "github:index/repositoryRuleset:RepositoryRuleset"


def namespace(enforce: str) -> dict:
    labels = {"pod-security.kubernetes.io/enforce": enforce}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps", "labels": labels}}


def test_namespace_restricted_passes(pack: PolicyPackProcess) -> None:
    result = analyze_resources(pack, [resource(NAMESPACE, "apps", namespace("restricted"))])
    assert violated(result, "namespace-pod-security-restricted") == []


def test_namespace_baseline_violates(pack: PolicyPackProcess) -> None:
    result = analyze_resources(pack, [resource(NAMESPACE, "apps", namespace("baseline"))])
    [message] = violated(result, "namespace-pod-security-restricted")
    assert "'baseline'" in message
    [violation] = [v for v in result.violations if v.policy == "namespace-pod-security-restricted"]
    assert violation.enforcement_level == "mandatory"


def test_namespace_without_labels_violates(pack: PolicyPackProcess) -> None:
    bare = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}}
    assert violated(
        analyze_resources(pack, [resource(NAMESPACE, "apps", bare)]), "namespace-pod-security-restricted"
    )


def repo(alerts: bool) -> dict:
    return {"name": "svc", "vulnerabilityAlerts": alerts}


def ruleset(deletion: bool = True, non_fast_forward: bool = True, enforcement: str = "active") -> dict:
    return {
        "name": "default-branch",
        "repository": "svc",
        "target": "branch",
        "enforcement": enforcement,
        "conditions": {"refName": {"includes": ["~DEFAULT_BRANCH"], "excludes": []}},
        "rules": {"deletion": deletion, "nonFastForward": non_fast_forward},
    }


def test_vulnerability_alerts_on_passes(pack: PolicyPackProcess) -> None:
    result = analyze_resources(
        pack, [resource(REPOSITORY, "svc", repo(True)), resource(RULESET, "r", ruleset())]
    )
    assert violated(result, "repository-vulnerability-alerts") == []
    assert violated(result, "default-branch-protected") == []


def test_vulnerability_alerts_off_violates(pack: PolicyPackProcess) -> None:
    result = analyze_resources(
        pack, [resource(REPOSITORY, "svc", repo(False)), resource(RULESET, "r", ruleset())]
    )
    [message] = violated(result, "repository-vulnerability-alerts")
    assert "'svc'" in message


def test_default_branch_without_ruleset_violates(pack: PolicyPackProcess) -> None:
    result = analyze_resources(pack, [resource(REPOSITORY, "svc", repo(True))])
    [message] = violated(result, "default-branch-protected")
    assert "force pushes or deletion" in message


def test_ruleset_allowing_force_push_violates(pack: PolicyPackProcess) -> None:
    resources = [
        resource(REPOSITORY, "svc", repo(True)),
        resource(RULESET, "r", ruleset(non_fast_forward=False)),
    ]
    assert violated(analyze_resources(pack, resources), "default-branch-protected")


def test_ruleset_in_evaluate_mode_violates(pack: PolicyPackProcess) -> None:
    resources = [
        resource(REPOSITORY, "svc", repo(True)),
        resource(RULESET, "r", ruleset(enforcement="evaluate")),
    ]
    assert violated(analyze_resources(pack, resources), "default-branch-protected")


def test_policy_config_can_lower_enforcement(pack: PolicyPackProcess) -> None:
    result = analyze_resources(
        pack,
        [resource(REPOSITORY, "svc", repo(False)), resource(RULESET, "r", ruleset())],
        {"repository-vulnerability-alerts": "advisory"},
    )
    [violation] = [v for v in result.violations if v.policy == "repository-vulnerability-alerts"]
    assert violation.enforcement_level == "advisory"


def test_resource_violations_name_the_resource_urn(pack: PolicyPackProcess) -> None:
    analyzed = resource(NAMESPACE, "apps", namespace("baseline"))
    result = analyze_resources(pack, [analyzed])
    [violation] = [v for v in result.violations if v.policy == "namespace-pod-security-restricted"]
    assert violation.urn == analyzed.urn
