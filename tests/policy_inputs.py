"""Resources as the engine hands them to the policies, shared by the domains' policy tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from components.registry import manifests as registry
from roadbike.program import RecordedResource
from tests.helpers import parse, resource, roadbike, stack_raw, write_stack

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


NAMESPACE = "kubernetes:core/v1:Namespace"


def namespace(enforce: str) -> dict:
    labels = {"pod-security.kubernetes.io/enforce": enforce}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps", "labels": labels}}


GITHUB_REPOSITORY = "github:index/repository:Repository"


RULESET = "github:index/repositoryRuleset:RepositoryRuleset"


def repo(alerts: bool) -> dict:
    return {"name": "svc", "vulnerabilityAlerts": alerts}


def branch_ruleset(deletion: bool = True, non_fast_forward: bool = True, enforcement: str = "active") -> dict:
    return {
        "name": "default-branch",
        "repository": "svc",
        "target": "branch",
        "enforcement": enforcement,
        "conditions": {"refName": {"includes": ["~DEFAULT_BRANCH"], "excludes": []}},
        "rules": {"deletion": deletion, "nonFastForward": non_fast_forward},
    }
