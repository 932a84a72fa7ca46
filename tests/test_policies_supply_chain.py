"""Supply-chain policies through the real pack over the Analyzer protocol, and `roadbike plan` refusing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components.registry import manifests as registry
from roadbike.analyzer import PolicyPackProcess
from roadbike.program import RecordedResource
from tests.helpers import REPO, analyze_resources, parse, resource, roadbike, stack_raw, violated, write_stack

OCI_REGISTRY = "roadbike:registry:OciRegistry"
MULTI_ARCH_IMAGE = "roadbike:images:MultiArchImage"
IMAGE = "docker-build:index:Image"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CIP = "kubernetes:policy.sigstore.dev/v1beta1:ClusterImagePolicy"
ENVIRONMENT_SECRET = "github:index/actionsEnvironmentSecret:ActionsEnvironmentSecret"
ENVIRONMENT_VARIABLE = "github:index/actionsEnvironmentVariable:ActionsEnvironmentVariable"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
HOST = "registry.example:5000"
REPOSITORY = f"{HOST}/acme/svc"
PUBLIC_KEY = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"
PRIVATE_KEY = (
    "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\neyJr\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
)


def oci_registry(scheme: str = "https", authentication: str = "htpasswd") -> RecordedResource:
    props = {"host": HOST, "url": f"{scheme}://{HOST}", "scheme": scheme, "authentication": authentication}
    return resource(OCI_REGISTRY, "registry", props)


def build(tags: list[str] | None = None, platforms: list[str] | None = None) -> RecordedResource:
    props = {
        "tags": tags if tags is not None else [f"{REPOSITORY}:1.0.0"],
        "platforms": platforms or ["linux/amd64", "linux/arm64"],
        "cacheFrom": [{"registry": {"ref": f"{REPOSITORY}:buildcache"}}],
    }
    return resource(IMAGE, "svc-image", props)


def multi_arch(builds: bool = False, platforms: list[str] | None = None) -> RecordedResource:
    props = {
        "service": "svc",
        "repository": REPOSITORY,
        "tags": [f"{REPOSITORY}:1.0.0"],
        "platforms": platforms or ["linux/amd64", "linux/arm64"],
        "builds": builds,
    }
    return resource(MULTI_ARCH_IMAGE, "svc-image", props)


def deployment(image: str, parent: str = "", name: str = "app") -> RecordedResource:
    manifest = registry.deployment_manifest(parse(stack_raw("dev")))
    manifest["spec"]["template"]["spec"]["containers"][0]["image"] = image
    manifest["metadata"]["name"] = name
    return resource(DEPLOYMENT, name, manifest, parent=parent)


def image_policy(
    authority: dict[str, Any], mode: str = "enforce", glob: str = f"{REPOSITORY}:**"
) -> RecordedResource:
    spec = {"mode": mode, "images": [{"glob": glob}], "authorities": [authority]}
    return resource(
        CIP,
        "svc-admission",
        {
            "apiVersion": "policy.sigstore.dev/v1beta1",
            "kind": "ClusterImagePolicy",
            "metadata": {"name": "svc"},
            "spec": spec,
        },
    )


KEY_AUTHORITY = {"name": "cosign-key", "key": {"data": PUBLIC_KEY}}
KEYLESS_AUTHORITY = {
    "name": "release",
    "keyless": {
        "identities": [{"issuer": "https://token.actions.githubusercontent.com", "subjectRegExp": "^x$"}]
    },
}


# --- images-from-stack-registry --------------------------------------------------------------------


def test_images_in_the_stack_registry_pass(pack: PolicyPackProcess) -> None:
    component = oci_registry()
    own = deployment(registry.REGISTRY_IMAGE, parent=component.urn, name="registry")
    result = analyze_resources(pack, [component, own, build(), multi_arch()])
    assert violated(result, "images-from-stack-registry") == []


def test_images_elsewhere_violate(pack: PolicyPackProcess) -> None:
    foreign_build = build(tags=["docker.io/acme/svc:1.0.0"])
    foreign_pod = deployment("ghcr.io/acme/svc@sha256:" + "a" * 64)
    result = analyze_resources(pack, [oci_registry(), foreign_build, foreign_pod])
    messages = violated(result, "images-from-stack-registry")
    assert len(messages) == 2
    assert any("docker.io/acme/svc:1.0.0" in m for m in messages)
    assert any("ghcr.io/acme/svc@sha256:" in m and HOST in m for m in messages)


# --- image-multi-arch ----------------------------------------------------------------------------------


def test_both_platforms_pass(pack: PolicyPackProcess) -> None:
    result = analyze_resources(pack, [build(), multi_arch(builds=True, platforms=["linux/amd64"])])
    assert violated(result, "image-multi-arch") == []


def test_one_platform_violates(pack: PolicyPackProcess) -> None:
    result = analyze_resources(
        pack, [build(platforms=["linux/amd64"]), multi_arch(platforms=["linux/arm64"])]
    )
    messages = violated(result, "image-multi-arch")
    assert len(messages) == 2
    assert any("add linux/arm64" in m for m in messages)
    assert any("add linux/amd64" in m for m in messages)


# --- image-tag-immutable -------------------------------------------------------------------------------


def test_version_tags_and_digests_pass(pack: PolicyPackProcess) -> None:
    pinned = deployment(registry.REGISTRY_IMAGE)
    result = analyze_resources(pack, [build(), multi_arch(), pinned])
    assert violated(result, "image-tag-immutable") == []


def test_latest_and_untagged_violate(pack: PolicyPackProcess) -> None:
    result = analyze_resources(
        pack, [build(tags=[f"{REPOSITORY}:latest"]), deployment(f"{REPOSITORY}"), build(tags=[])]
    )
    messages = violated(result, "image-tag-immutable")
    assert any(f"{REPOSITORY}:latest" in m for m in messages)
    assert any(m.startswith(f"Deployment 'app' uses mutable references {REPOSITORY}:") for m in messages)
    assert any("has no tag" in m for m in messages)


# --- registry-https-auth ------------------------------------------------------------------------------


def test_https_registry_with_auth_passes(pack: PolicyPackProcess) -> None:
    result = analyze_resources(pack, [oci_registry(), oci_registry("https", "basic")])
    assert violated(result, "registry-https-auth") == []


def test_http_or_anonymous_registry_violates(pack: PolicyPackProcess) -> None:
    [http] = violated(analyze_resources(pack, [oci_registry("http")]), "registry-https-auth")
    assert "without TLS" in http and "scheme to https" in http
    [anonymous] = violated(analyze_resources(pack, [oci_registry("https", "none")]), "registry-https-auth")
    assert "no credentials" in anonymous


# --- service-signing-configured -------------------------------------------------------------------------


@pytest.mark.parametrize("authority", [KEY_AUTHORITY, KEYLESS_AUTHORITY], ids=["key", "keyless"])
def test_signature_enforced_for_every_service_passes(pack: PolicyPackProcess, authority: dict) -> None:
    result = analyze_resources(pack, [multi_arch(), image_policy(authority)])
    assert violated(result, "service-signing-configured") == []


def test_broad_glob_covers_the_service(pack: PolicyPackProcess) -> None:
    result = analyze_resources(pack, [multi_arch(), image_policy(KEY_AUTHORITY, glob=f"{HOST}/acme/**")])
    assert violated(result, "service-signing-configured") == []


@pytest.mark.parametrize(
    "policies",
    [
        [],
        [image_policy(KEY_AUTHORITY, mode="warn")],
        [image_policy({"name": "anything", "static": {"action": "pass"}})],
        [image_policy(KEY_AUTHORITY, glob=f"{HOST}/acme/other:**")],
    ],
    ids=["no-policy", "warn-only", "static-pass", "other-repository"],
)
def test_unsigned_service_violates(pack: PolicyPackProcess, policies: list[RecordedResource]) -> None:
    [message] = violated(analyze_resources(pack, [multi_arch(), *policies]), "service-signing-configured")
    assert "'svc'" in message and "roadbike:signing.mode" in message


# --- private-key-in-secrets-only -----------------------------------------------------------------------


def test_private_key_in_an_actions_secret_passes(pack: PolicyPackProcess) -> None:
    secret = resource(ENVIRONMENT_SECRET, "key", {"secretName": "COSIGN_PRIVATE_KEY", "value": PRIVATE_KEY})
    kube = resource(
        "kubernetes:core/v1:Secret", "tls", {"kind": "Secret", "stringData": {"tls.key": PRIVATE_KEY}}
    )
    result = analyze_resources(pack, [secret, kube])
    assert violated(result, "private-key-in-secrets-only") == []


def test_private_key_anywhere_else_violates(pack: PolicyPackProcess) -> None:
    variable = resource(ENVIRONMENT_VARIABLE, "key", {"variableName": "COSIGN_KEY", "value": PRIVATE_KEY})
    config_map = resource(CONFIG_MAP, "keys", {"kind": "ConfigMap", "data": {"cosign.key": PRIVATE_KEY}})
    messages = violated(analyze_resources(pack, [variable, config_map]), "private-key-in-secrets-only")
    assert len(messages) == 2
    assert any("data.cosign.key" in m for m in messages)
    assert all("PRIVATE KEY-----" not in m for m in messages)


# --- pod-security-restricted -----------------------------------------------------------------------------


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


# --- roadbike plan refuses ------------------------------------------------------------------------------


def plan_violations(
    tmp_path: Path, raw: dict[str, Any] | None = None, config: Path | None = None
) -> tuple[int, set[str], str]:
    stack = config or write_stack(tmp_path / "Pulumi.supply.yaml", raw or {})
    out = tmp_path / "plan"
    result = roadbike("plan", "--stack", "supply", "--config-file", str(stack), "--out", str(out))
    report = (
        json.loads((out / "policy/report.json").read_text()) if (out / "policy/report.json").exists() else {}
    )
    mandatory = {v["policy"] for v in report.get("violations", []) if v["enforcementLevel"] == "mandatory"}
    return result.returncode, mandatory, result.stdout + result.stderr


def test_plan_of_an_http_registry_exits_1(tmp_path: Path) -> None:
    raw = stack_raw("dev")
    raw["registry"] = {"mode": "managed", "scheme": "http"}
    code, policies, output = plan_violations(tmp_path, raw)
    assert code == 1, output
    assert "registry-https-auth" in policies
    assert "[mandatory]  registry-https-auth" in output


def test_plan_of_a_single_platform_exits_1(tmp_path: Path) -> None:
    raw = stack_raw("dev")
    raw["services"][1]["platforms"] = ["linux/amd64"]
    code, policies, output = plan_violations(tmp_path, raw)
    assert code == 1, output
    assert "image-multi-arch" in policies


def test_plan_of_the_insecure_supply_chain_fixture_exits_1(tmp_path: Path) -> None:
    fixture = REPO / "tests/fixtures/Pulumi.insecure-supply-chain.yaml"
    code, policies, output = plan_violations(tmp_path, config=fixture)
    assert code == 1, output
    assert {"registry-https-auth", "image-multi-arch", "service-signing-configured"} <= policies
