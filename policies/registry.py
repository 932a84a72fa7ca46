"""Policies on the OCI registry: https with authentication."""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
)

from policies.resource_types import (
    OCI_REGISTRY,
)
from policies.util import get_path


def registry_https_auth(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
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


POLICIES: list[Policy] = [
    ResourceValidationPolicy(
        name="registry-https-auth",
        description="The stack's registry is served over HTTPS and requires authentication.",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.CRITICAL,
        validate=registry_https_auth,
    ),
]
