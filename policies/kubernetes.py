"""Policies on core Kubernetes objects: restricted namespaces and pods."""

from __future__ import annotations

from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
)

from policies.resource_types import (
    NAMESPACE,
    WORKLOADS,
)
from policies.util import as_list, get_path, resource_label
from policies.workloads import containers, pod_spec

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


def pod_security_restricted(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type not in WORKLOADS:
        return
    spec = pod_spec(args.resource_type, args.props)
    pod_context = get_path(spec, "securityContext", default={})
    problems = _pod_problems(spec)
    for container in containers(spec):
        problems.extend(_container_problems(container, pod_context))
    if problems:
        report_violation(
            f"{resource_label(args)} does not meet the restricted Pod Security profile ({'; '.join(problems)}): "
            "run as non-root with seccomp RuntimeDefault, no privilege escalation, all capabilities "
            "dropped, and no host namespaces, ports or paths",
            None,
        )


RESTRICTED = "restricted"


def namespace_pod_security_restricted(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    if args.resource_type != NAMESPACE:
        return
    labels = get_path(args.props, "metadata", "labels", default={})
    enforce = labels.get("pod-security.kubernetes.io/enforce")
    if enforce != RESTRICTED:
        name = get_path(args.props, "metadata", "name", default=args.name)
        report_violation(
            f"namespace {name!r} has pod-security.kubernetes.io/enforce={enforce!r}; "
            f"set it to {RESTRICTED!r} so that only pods meeting the restricted profile are admitted",
            None,
        )


POLICIES: list[Policy] = [
    ResourceValidationPolicy(
        name="pod-security-restricted",
        description="Every pod the platform deploys (the managed registry's) meets the restricted Pod Security profile.",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
        validate=pod_security_restricted,
    ),
    ResourceValidationPolicy(
        name="namespace-pod-security-restricted",
        description="Every namespace enforces the Pod Security Admission 'restricted' profile.",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
        validate=namespace_pod_security_restricted,
    ),
]
