"""Pure renderers of the multi-arch image the platform builds itself: a service's bootstrap image.

When a service sets `bootstrapCommit`, the platform builds its repository's Dockerfile at that commit
for every configured platform (linux/amd64 and linux/arm64), pushes it to the stack's registry tagged
with the version and the commit, with a registry build cache, and only on `pulumi up` (never in a
preview). Without it, the service's release workflow builds and pushes its images. Never `latest`.
"""

from __future__ import annotations

from typing import Any

from components.config import Service, StackConfig
from components.naming import image_cache_ref, image_repository, registry_host

GITHUB = "https://github.com"


def image_tag(version: str) -> str:
    """An OCI tag for a SemVer version: tags allow [A-Za-z0-9_.-], so build metadata's '+' becomes '_'."""
    return version.replace("+", "_")


def builds_image(service: Service) -> bool:
    return service.bootstrap_commit is not None


def image_tags(config: StackConfig, service: Service) -> list[str]:
    repository = image_repository(config, service)
    tags = [f"{repository}:{image_tag(service.version)}"]
    if service.bootstrap_commit:
        tags.append(f"{repository}:{service.bootstrap_commit}")
    return tags


def source_url(config: StackConfig, service: Service) -> str:
    return f"{GITHUB}/{config.github.owner}/{service.repository}"


def build_context(config: StackConfig, service: Service) -> str:
    """The repository at the pinned commit, fetched by BuildKit as a git context."""
    return f"{source_url(config, service)}.git#{service.bootstrap_commit}"


def image_labels(config: StackConfig, service: Service) -> dict[str, str]:
    return {
        "org.opencontainers.image.source": source_url(config, service),
        "org.opencontainers.image.revision": service.bootstrap_commit or "",
        "org.opencontainers.image.version": service.version,
    }


def image_build_args(config: StackConfig, service: Service) -> dict[str, Any]:
    """pulumi-docker-build `Image` arguments (snake_case), without the registry credentials."""
    cache = image_cache_ref(config, service)
    return {
        "push": True,
        "build_on_preview": False,
        "context": {"location": build_context(config, service)},
        "platforms": list(service.platforms),
        "tags": image_tags(config, service),
        "labels": image_labels(config, service),
        "cache_from": [{"registry": {"ref": cache}}],
        "cache_to": [
            {"registry": {"ref": cache, "mode": "max", "image_manifest": True, "oci_media_types": True}}
        ],
    }


def image_props(config: StackConfig, service: Service) -> dict[str, Any]:
    """What the MultiArchImage component declares (the policy pack reads these when nothing is built)."""
    return {
        "service": service.name,
        "registry": registry_host(config),
        "repository": image_repository(config, service),
        "tags": image_tags(config, service),
        "platforms": list(service.platforms),
        "builds": builds_image(service),
    }


def image_outputs(config: StackConfig, service: Service) -> dict[str, str]:
    """The `image` stack output before the build: repository and tag (digest and ref come from the build)."""
    return {"repository": image_repository(config, service), "tag": image_tag(service.version)}
