"""Policies on the supply chain: the registry, the images the platform builds, signing and admission."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from policies.resource_types import (
    CLUSTER_IMAGE_POLICIES,
    DOCKER_BUILD_IMAGE,
    KUBERNETES_SECRET,
    MULTI_ARCH_IMAGE,
    OCI_REGISTRY,
    SECRET_VALUE_FIELDS,
    WORKLOADS,
)
from policies.util import as_list, get_path

REQUIRED_PLATFORMS = ("linux/amd64", "linux/arm64")
MUTABLE_TAGS = {"latest"}
PRIVATE_KEY_MARKERS = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----|\"kdf\"\s*:\s*\{\s*\"name\"\s*:\s*\"scrypt\""
)
PUBLIC_KEY_PEM = "-----BEGIN PUBLIC KEY-----"
# Restricted Pod Security profile (Kubernetes Pod Security Standards).
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
ALLOWED_SECCOMP = {"RuntimeDefault", "Localhost"}
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:core/v1:Pod": ("spec",),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
DEFAULT_POD_SPEC_PATH = ("spec", "template", "spec")


# --- image references -------------------------------------------------------------------------------


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


def _label(args: ResourceValidationArgs | PolicyResource) -> str:
    name = get_path(args.props, "metadata", "name") or get_path(args.props, "service") or args.name
    return f"{args.resource_type.rsplit(':', 1)[-1]} {name!r}"


# --- images only from the stack's registry ----------------------------------------------------------


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


def _images_from_stack_registry(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    hosts = {str(get_path(r.props, "host")) for r in args.resources if r.resource_type == OCI_REGISTRY}
    for resource in args.resources:
        foreign = [ref for ref in _references(resource) if not in_registry(ref, hosts)]
        if foreign:
            where = f"the stack's registry {', '.join(sorted(hosts))}" if hosts else "a roadbike OciRegistry"
            report_violation(
                f"{_label(resource)} uses images outside {where}: {', '.join(sorted(set(foreign)))}. "
                "Push and pull the platform's images only through the stack's registry "
                "(roadbike:registry)",
                resource.urn,
            )


images_from_stack_registry = StackValidationPolicy(
    name="images-from-stack-registry",
    description="Images are built into, cached in and run from the stack's own registry only.",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    validate=_images_from_stack_registry,
)


# --- both platforms built ---------------------------------------------------------------------------


def _declared_build(args: ResourceValidationArgs) -> bool:
    """A docker-build Image, or a MultiArchImage that builds nothing itself (its release does)."""
    if args.resource_type == DOCKER_BUILD_IMAGE:
        return True
    return args.resource_type == MULTI_ARCH_IMAGE and get_path(args.props, "builds") is not True


def _multi_arch(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if not _declared_build(args):
        return
    platforms = {str(p) for p in as_list(get_path(args.props, "platforms"))}
    missing = [p for p in REQUIRED_PLATFORMS if p not in platforms]
    if missing:
        report_violation(
            f"{_label(args)} is built for {', '.join(sorted(platforms)) or 'the builder platform only'}; "
            f"add {', '.join(missing)} (roadbike:services[].platforms: [linux/amd64, linux/arm64])",
            None,
        )


image_multi_arch = ResourceValidationPolicy(
    name="image-multi-arch",
    description="Every image is built for both linux/amd64 and linux/arm64.",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.MEDIUM,
    validate=_multi_arch,
)


# --- no mutable tag -----------------------------------------------------------------------------------


def _image_references(args: ResourceValidationArgs) -> list[str]:
    if _declared_build(args):
        return [str(t) for t in as_list(get_path(args.props, "tags"))]
    if args.resource_type in WORKLOADS:
        return workload_images(args.resource_type, args.props)
    return []


def _immutable_tags(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    references = _image_references(args)
    mutable = sorted({ref for ref in references if is_mutable(ref)})
    if _declared_build(args) and not references:
        report_violation(f"{_label(args)} has no tag: tag it with the version and the commit", None)
    if mutable:
        report_violation(
            f"{_label(args)} uses mutable references {', '.join(mutable)}: tag builds with the version "
            "and the commit SHA, and deploy by digest (<repository>@sha256:...), never `latest`",
            None,
        )


image_tag_immutable = ResourceValidationPolicy(
    name="image-tag-immutable",
    description="No image is built or deployed untagged or as `latest`.",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    validate=_immutable_tags,
)


# --- registry over HTTPS with authentication ---------------------------------------------------------


def _registry_https_auth(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != OCI_REGISTRY:
        return
    url = str(get_path(args.props, "url", default=""))
    if get_path(args.props, "scheme") != "https" or not url.startswith("https://"):
        report_violation(
            f"the registry {url!r} is reached without TLS: images and credentials would travel in "
            "clear text; set roadbike:registry.scheme to https (the managed registry then serves TLS)",
            None,
        )
    if get_path(args.props, "authentication") not in ("htpasswd", "basic"):
        report_violation(
            f"the registry {url!r} has no credentials: set roadbike:registry.username and, as a secret, "
            "roadbike:registry.password (pulumi config set --secret --path roadbike:registry.password)",
            None,
        )


registry_https_auth = ResourceValidationPolicy(
    name="registry-https-auth",
    description="The stack's registry is served over HTTPS and requires authentication.",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.CRITICAL,
    validate=_registry_https_auth,
)


# --- signing configured for every service ------------------------------------------------------------


def glob_regexp(glob: str) -> re.Pattern[str]:
    """policy-controller's glob: `**` any characters, `*` any but '/', the whole name."""
    pattern = re.escape(glob).replace(r"\*\*", "\0").replace(r"\*", "[^/]*").replace("\0", ".*")
    return re.compile(f"^{pattern}$")


def _known(value: Any, read: Any) -> Any:
    """`read(value)`, or True where the value is not known yet (a preview before the key exists)."""
    try:
        return read(value)
    except UnknownValueError:
        return True


def _verifies(authority: Any) -> bool:
    if get_path(authority, "static") is not None:
        return False
    key = get_path(authority, "key")
    if key is not None:
        return bool(
            _known(key, lambda k: PUBLIC_KEY_PEM in str(get_path(k, "data", default="")))
            or get_path(key, "kms")
            or get_path(key, "secretRef", "name")
        )
    identities = as_list(get_path(authority, "keyless", "identities"))
    return bool(identities) and all(
        (get_path(i, "issuer") or get_path(i, "issuerRegExp"))
        and (get_path(i, "subject") or get_path(i, "subjectRegExp"))
        for i in identities
    )


def _enforcing_globs(policy: PolicyResource) -> list[str]:
    """The globs of a ClusterImagePolicy that enforces a signature check; none otherwise."""
    spec = get_path(policy.props, "spec", default={})
    if get_path(spec, "mode", default="enforce") != "enforce":
        return []
    if not any(_verifies(a) for a in as_list(get_path(spec, "authorities"))):
        return []
    return [str(get_path(i, "glob", default="")) for i in as_list(get_path(spec, "images"))]


def _covered_repositories(policies: Sequence[PolicyResource]) -> tuple[set[str], list[re.Pattern[str]]]:
    """Repositories named exactly (`<repo>:**`, `<repo>@**`), and the other globs as patterns."""
    exact: set[str] = set()
    patterns: list[re.Pattern[str]] = []
    for policy in policies:
        for glob in _enforcing_globs(policy):
            for suffix in (":**", "@**"):
                if glob.endswith(suffix) and "*" not in glob.removesuffix(suffix):
                    exact.add(glob.removesuffix(suffix))
                    break
            else:
                patterns.append(glob_regexp(glob))
    return exact, patterns


def _is_covered(repository: str, exact: set[str], patterns: list[re.Pattern[str]]) -> bool:
    if repository in exact:
        return True
    digest_ref = f"{repository}@sha256:{'0' * 64}"
    return any(p.match(digest_ref) for p in patterns)


def _signing_configured(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    policies = [r for r in args.resources if r.resource_type in CLUSTER_IMAGE_POLICIES]
    exact, patterns = _covered_repositories(policies)
    for image in (r for r in args.resources if r.resource_type == MULTI_ARCH_IMAGE):
        repository = str(get_path(image.props, "repository", default=""))
        if not _is_covered(repository, exact, patterns):
            report_violation(
                f"the images of service {get_path(image.props, 'service', default=image.name)!r} "
                f"({repository}) are admitted unsigned: no enforcing ClusterImagePolicy requires their "
                "signature. Set roadbike:signing.mode to keypair or keyless",
                image.urn,
            )


service_signing_configured = StackValidationPolicy(
    name="service-signing-configured",
    description="Every service's images must be signed: an enforcing admission policy verifies them.",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    validate=_signing_configured,
)


# --- private key material only in secret inputs -------------------------------------------------------


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key in value:
            yield from _strings(value[key], f"{path}.{key}" if path else str(key))
    elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


def _secret_fields(resource_type: str) -> tuple[str, ...]:
    if resource_type == KUBERNETES_SECRET:
        return ("data", "stringData")
    return SECRET_VALUE_FIELDS.get(resource_type, ())


def _private_keys_in_secrets(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    allowed = _secret_fields(args.resource_type)
    exposed = sorted(
        path
        for path, text in _strings(args.props)
        if path.split(".", 1)[0].split("[", 1)[0] not in allowed and PRIVATE_KEY_MARKERS.search(text)
    )
    if exposed:
        report_violation(
            f"{_label(args)} holds private key material in {', '.join(exposed)}, an input that is "
            "stored and shown in clear: pass it only as the value of an Actions secret or a Kubernetes "
            "Secret, wrapped in pulumi.Output.secret",
            None,
        )


private_key_in_secrets_only = ResourceValidationPolicy(
    name="private-key-in-secrets-only",
    description="Private key material appears only in secret inputs (Actions secrets, Kubernetes Secrets).",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.CRITICAL,
    validate=_private_keys_in_secrets,
)


# --- restricted Pod Security profile ------------------------------------------------------------------


def _true(value: Any) -> bool:
    return value is True


def _pod_problems(spec: Any) -> list[str]:
    problems = [f"{key}: true" for key in ("hostNetwork", "hostPID", "hostIPC") if _true(get_path(spec, key))]
    for volume in as_list(get_path(spec, "volumes")):
        kinds = [k for k in volume if k != "name"]
        if any(k not in RESTRICTED_VOLUME_TYPES for k in kinds):
            problems.append(f"volume {get_path(volume, 'name')!r} of type {', '.join(kinds)}")
    pod_context = get_path(spec, "securityContext", default={})
    for sysctl in as_list(get_path(pod_context, "sysctls")):
        if get_path(sysctl, "name") not in SAFE_SYSCTLS:
            problems.append(f"sysctl {get_path(sysctl, 'name')!r}")
    if get_path(pod_context, "runAsUser") == 0:
        problems.append("runAsUser: 0")
    return problems


def _container_problems(container: Any, pod_context: Any) -> list[str]:
    context = get_path(container, "securityContext", default={})
    name = get_path(container, "name", default="?")
    problems: list[str] = []
    if _true(get_path(context, "privileged")):
        problems.append("privileged")
    if get_path(context, "allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    if "ALL" not in [str(c) for c in as_list(get_path(context, "capabilities", "drop"))]:
        problems.append("capabilities do not drop ALL")
    added = [str(c) for c in as_list(get_path(context, "capabilities", "add")) if c != "NET_BIND_SERVICE"]
    if added:
        problems.append(f"adds capabilities {', '.join(added)}")
    non_root = get_path(context, "runAsNonRoot", default=get_path(pod_context, "runAsNonRoot"))
    if non_root is not True:
        problems.append("runAsNonRoot is not true")
    if get_path(context, "runAsUser") == 0:
        problems.append("runAsUser: 0")
    seccomp = get_path(
        context, "seccompProfile", "type", default=get_path(pod_context, "seccompProfile", "type")
    )
    if seccomp not in ALLOWED_SECCOMP:
        problems.append("seccompProfile is not RuntimeDefault or Localhost")
    if any(get_path(p, "hostPort") for p in as_list(get_path(container, "ports"))):
        problems.append("hostPort")
    if get_path(context, "procMount", default="Default") != "Default":
        problems.append("procMount is not Default")
    return [f"container {name!r}: {p}" for p in problems]


def _pod_security_restricted(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type not in WORKLOADS:
        return
    spec = pod_spec(args.resource_type, args.props)
    pod_context = get_path(spec, "securityContext", default={})
    problems = _pod_problems(spec)
    for container in containers(spec):
        problems.extend(_container_problems(container, pod_context))
    if problems:
        report_violation(
            f"{_label(args)} does not meet the restricted Pod Security profile ({'; '.join(problems)}): "
            "run as non-root with seccomp RuntimeDefault, no privilege escalation, all capabilities "
            "dropped, and no host namespaces, ports or paths",
            None,
        )


pod_security_restricted = ResourceValidationPolicy(
    name="pod-security-restricted",
    description="Every pod the platform deploys (the managed registry's) meets the restricted Pod Security profile.",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    validate=_pod_security_restricted,
)

POLICIES = [
    images_from_stack_registry,
    image_multi_arch,
    image_tag_immutable,
    registry_https_auth,
    service_signing_configured,
    private_key_in_secrets_only,
    pod_security_restricted,
]
