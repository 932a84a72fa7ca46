"""Policies on core Kubernetes objects through the real pack over the Analyzer protocol."""

from __future__ import annotations

from components.registry import manifests as registry
from roadbike.analyzer import PolicyPackProcess
from tests.helpers import analyze_resources, resource, violated
from tests.policy_inputs import NAMESPACE, deployment, namespace


def test_rendered_registry_pod_is_restricted(pack: PolicyPackProcess) -> None:
    result = analyze_resources(pack, [deployment(registry.REGISTRY_IMAGE, name="registry")])
    assert violated(result, "pod-security-restricted") == []


def test_privileged_root_pod_violates(pack: PolicyPackProcess) -> None:
    unsafe = deployment(registry.REGISTRY_IMAGE)
    pod = unsafe.inputs["spec"]["template"]["spec"]
    pod["hostNetwork"] = True
    pod["securityContext"] = {}
    pod["volumes"].append({"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}})
    pod["containers"][0]["securityContext"] = {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}}
    [message] = violated(analyze_resources(pack, [unsafe]), "pod-security-restricted")
    for problem in ("hostNetwork", "hostPath", "privileged", "SYS_ADMIN", "runAsNonRoot", "seccompProfile"):
        assert problem in message


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
