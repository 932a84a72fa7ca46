"""Policies on core Kubernetes objects."""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
)

from policies.resource_types import NAMESPACE
from policies.util import get_path

RESTRICTED = "restricted"


def _namespace_restricted(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
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


namespace_pod_security_restricted = ResourceValidationPolicy(
    name="namespace-pod-security-restricted",
    description="Every namespace enforces the Pod Security Admission 'restricted' profile.",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    validate=_namespace_restricted,
)

POLICIES = [namespace_pod_security_restricted]
