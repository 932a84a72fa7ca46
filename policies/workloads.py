"""How the policies read workloads: pod specs, their containers and the image references they run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from policies.util import as_list, get_path

MUTABLE_TAGS = {"latest"}
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:core/v1:Pod": ("spec",),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


DEFAULT_POD_SPEC_PATH = ("spec", "template", "spec")


def split_reference(reference: str) -> tuple[str, str | None, str | None]:
    """`host:port/path/name:tag@digest` -> (repository, tag, digest); tag and digest may be missing."""
    name, _, digest = reference.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repository, _, tag = name.rpartition(":")
        return repository, tag, digest or None
    return name, None, digest or None


def is_mutable(reference: str) -> bool:
    """No tag, or `latest`, and no digest to pin it."""
    _, tag, digest = split_reference(reference)
    return digest is None and (tag is None or tag in MUTABLE_TAGS)


def in_registry(reference: str, hosts: set[str]) -> bool:
    return any(reference.startswith(f"{host}/") for host in hosts)


def pod_spec(resource_type: str, props: Any) -> Any:
    return get_path(props, *POD_SPEC_PATHS.get(resource_type, DEFAULT_POD_SPEC_PATH), default={})


def containers(spec: Any) -> Iterator[Any]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from as_list(get_path(spec, key))


def workload_images(resource_type: str, props: Any) -> list[str]:
    return [str(get_path(c, "image", default="")) for c in containers(pod_spec(resource_type, props))]
