"""Pure renderers of the signed-images-only admission rule: Sigstore policy-controller ClusterImagePolicies.

policy-controller checks every pod in a namespace labelled `policy.sigstore.dev/include: "true"`. An
image that matches a ClusterImagePolicy is admitted only if one of its authorities verifies; an image
that matches none is refused (the controller's default `no-match-policy: deny`). So one policy per
service, matching only that service's repository in the stack's registry and requiring its key (or its
release workflow's keyless identity), lets exactly the stack's signed images run there. The managed
registry's own image is admitted by its pinned digest alone.
"""

from __future__ import annotations

from typing import Any

from components.config import Service, StackConfig
from components.naming import REGISTRY_PULL_SECRET, image_policy_name, image_repository, platform_labels
from components.signing.identity import FULCIO_URL, REKOR_URL, keyless_identity

API_VERSION = "policy.sigstore.dev/v1beta1"
KIND = "ClusterImagePolicy"
INCLUDE_LABEL = "policy.sigstore.dev/include"
# The format the release workflow signs in: `sha256-<digest>.sig` tags (cosign's legacy storage).
SIGNATURE_FORMAT = "legacy"
DOCKER_HUB = "docker.io/"
DOCKER_HUB_RESOLVED = "index.docker.io/"


def signing_enabled(config: StackConfig) -> bool:
    return config.signing.mode != "none"


def namespace_labels(config: StackConfig) -> dict[str, str]:
    """The label that puts the stack's namespace under policy-controller."""
    return {INCLUDE_LABEL: "true"} if signing_enabled(config) else {}


def repository_globs(repository: str) -> list[dict[str, str]]:
    """The repository's tags and digests, and nothing else (`*` stops at '/', `**` does not)."""
    return [{"glob": f"{repository}:**"}, {"glob": f"{repository}@**"}]


def _signature_source() -> list[dict[str, Any]]:
    return [{"signaturePullSecrets": [{"name": REGISTRY_PULL_SECRET}]}]


def key_authority(public_key_pem: Any) -> dict[str, Any]:
    return {
        "name": "cosign-key",
        "key": {"data": public_key_pem, "hashAlgorithm": "sha256"},
        "signatureFormat": SIGNATURE_FORMAT,
        "source": _signature_source(),
    }


def keyless_authority(config: StackConfig, service: Service) -> dict[str, Any]:
    identity = keyless_identity(config, service)
    return {
        "name": "release-workflow",
        "keyless": {
            "url": FULCIO_URL,
            "identities": [{"issuer": identity["issuer"], "subjectRegExp": identity["identity"]}],
        },
        "ctlog": {"url": REKOR_URL},
        "signatureFormat": SIGNATURE_FORMAT,
        "source": _signature_source(),
    }


def service_authority(config: StackConfig, service: Service, public_key_pem: Any = None) -> dict[str, Any]:
    if config.signing.mode == "keyless":
        return keyless_authority(config, service)
    return key_authority(public_key_pem)


def _metadata(config: StackConfig, subject: str) -> dict[str, Any]:
    return {"name": image_policy_name(config, subject), "labels": platform_labels(config)}


def service_image_policy(config: StackConfig, service: Service, public_key_pem: Any = None) -> dict[str, Any]:
    """Only signed images of this service's repository in the stack's registry (`public_key_pem` for keypair)."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": _metadata(config, service.name),
        "spec": {
            "mode": "enforce",
            "images": repository_globs(image_repository(config, service)),
            "authorities": [service_authority(config, service, public_key_pem)],
        },
    }


def _resolved_name(image: str) -> str:
    """The name policy-controller matches: Docker Hub images under `index.docker.io/`, no tag."""
    name, _, digest = image.partition("@")
    if name.startswith(DOCKER_HUB):
        name = DOCKER_HUB_RESOLVED + name.removeprefix(DOCKER_HUB)
    repository = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
    return f"{repository}@{digest}"


def pinned_image_policy(config: StackConfig, subject: str, image: str) -> dict[str, Any]:
    """Admit one third-party image by its exact digest (e.g. the managed registry itself)."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": _metadata(config, subject),
        "spec": {
            "mode": "enforce",
            "images": [{"glob": _resolved_name(image)}],
            "authorities": [{"name": "pinned-digest", "static": {"action": "pass"}}],
        },
    }
