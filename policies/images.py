"""Policies on the images the platform builds and runs: from the stack's registry, multi-arch, immutable tags."""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies.resource_types import (
    DOCKER_BUILD_IMAGE,
    MULTI_ARCH_IMAGE,
    OCI_REGISTRY,
    WORKLOADS,
)
from policies.util import as_list, get_path, resource_label
from policies.workloads import in_registry, is_mutable, workload_images

REQUIRED_PLATFORMS = ("linux/amd64", "linux/arm64")


def _build_references(resource: PolicyResource) -> list[str]:
    props = resource.props
    refs = [str(t) for t in as_list(get_path(props, "tags"))]
    for cache in (*as_list(get_path(props, "cacheFrom")), *as_list(get_path(props, "cacheTo"))):
        ref = get_path(cache, "registry", "ref")
        if ref:
            refs.append(str(ref))
    return refs


def _references(resource: PolicyResource) -> list[str]:
    """The image references a resource pushes or runs; the managed registry's own pod is exempt."""
    if resource.resource_type == DOCKER_BUILD_IMAGE:
        return _build_references(resource)
    if resource.resource_type == MULTI_ARCH_IMAGE:
        return [str(get_path(resource.props, "repository", default=""))]
    if resource.resource_type in WORKLOADS:
        parent = resource.parent
        if parent is not None and parent.resource_type == OCI_REGISTRY:
            return []
        return workload_images(resource.resource_type, resource.props)
    return []


def images_from_stack_registry(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    hosts = {str(get_path(r.props, "host")) for r in args.resources if r.resource_type == OCI_REGISTRY}
    for resource in args.resources:
        foreign = [ref for ref in _references(resource) if not in_registry(ref, hosts)]
        if foreign:
            where = f"the stack's registry {', '.join(sorted(hosts))}" if hosts else "a roadbike OciRegistry"
            report_violation(
                f"{resource_label(resource)} uses images outside {where}: {', '.join(sorted(set(foreign)))}. "
                "Push and pull the platform's images only through the stack's registry "
                "(roadbike:registry)",
                resource.urn,
            )


def _declared_build(args: ResourceValidationArgs) -> bool:
    """A docker-build Image, or a MultiArchImage that builds nothing itself (its release does)."""
    if args.resource_type == DOCKER_BUILD_IMAGE:
        return True
    return args.resource_type == MULTI_ARCH_IMAGE and get_path(args.props, "builds") is not True


def image_multi_arch(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if not _declared_build(args):
        return
    platforms = {str(p) for p in as_list(get_path(args.props, "platforms"))}
    missing = [p for p in REQUIRED_PLATFORMS if p not in platforms]
    if missing:
        report_violation(
            f"{resource_label(args)} is built for {', '.join(sorted(platforms)) or 'the builder platform only'}; "
            f"add {', '.join(missing)} (roadbike:services[].platforms: [linux/amd64, linux/arm64])",
            None,
        )


def _image_references(args: ResourceValidationArgs) -> list[str]:
    if _declared_build(args):
        return [str(t) for t in as_list(get_path(args.props, "tags"))]
    if args.resource_type in WORKLOADS:
        return workload_images(args.resource_type, args.props)
    return []


def image_tag_immutable(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    references = _image_references(args)
    mutable = sorted({ref for ref in references if is_mutable(ref)})
    if _declared_build(args) and not references:
        report_violation(f"{resource_label(args)} has no tag: tag it with the version and the commit", None)
    if mutable:
        report_violation(
            f"{resource_label(args)} uses mutable references {', '.join(mutable)}: tag builds with the version "
            "and the commit SHA, and deploy by digest (<repository>@sha256:...), never `latest`",
            None,
        )


POLICIES: list[Policy] = [
    StackValidationPolicy(
        name="images-from-stack-registry",
        description="Images are built into, cached in and run from the stack's own registry only.",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
        validate=images_from_stack_registry,
    ),
    ResourceValidationPolicy(
        name="image-multi-arch",
        description="Every image is built for both linux/amd64 and linux/arm64.",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.MEDIUM,
        validate=image_multi_arch,
    ),
    ResourceValidationPolicy(
        name="image-tag-immutable",
        description="No image is built or deployed untagged or as `latest`.",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
        validate=image_tag_immutable,
    ),
]
