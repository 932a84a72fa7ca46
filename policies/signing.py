"""Policies on signing and admission: every service signed and verified at admission, private keys only in secrets."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

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
from pulumi_policy.proxy import UnknownValueError

from policies.resource_types import (
    CLUSTER_IMAGE_POLICIES,
    KUBERNETES_SECRET,
    MULTI_ARCH_IMAGE,
    SECRET_VALUE_FIELDS,
)
from policies.util import as_list, get_path, resource_label

PRIVATE_KEY_MARKERS = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----|\"kdf\"\s*:\s*\{\s*\"name\"\s*:\s*\"scrypt\""
)


PUBLIC_KEY_PEM = "-----BEGIN PUBLIC KEY-----"


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


def service_signing_configured(args: StackValidationArgs, report_violation: ReportViolation) -> None:
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


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every known string of the inputs. A value unknown during preview (a key pair or password that
    does not exist yet) is passed over: the engine analyzes the resource again, with it known, at
    `pulumi up`, so the policy still gates it there."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key in value:
            try:
                inner = value[key]
            except UnknownValueError:
                continue
            yield from _strings(inner, f"{path}.{key}" if path else str(key))
    elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        for index in range(len(value)):
            try:
                item = value[index]
            except UnknownValueError:
                continue
            yield from _strings(item, f"{path}[{index}]")


def _secret_fields(resource_type: str) -> tuple[str, ...]:
    if resource_type == KUBERNETES_SECRET:
        return ("data", "stringData")
    return SECRET_VALUE_FIELDS.get(resource_type, ())


def private_key_in_secrets_only(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    allowed = _secret_fields(args.resource_type)
    exposed = sorted(
        path
        for path, text in _strings(args.props)
        if path.split(".", 1)[0].split("[", 1)[0] not in allowed and PRIVATE_KEY_MARKERS.search(text)
    )
    if exposed:
        report_violation(
            f"{resource_label(args)} holds private key material in {', '.join(exposed)}, an input that is "
            "stored and shown in clear: pass it only as the value of an Actions secret or a Kubernetes "
            "Secret, wrapped in pulumi.Output.secret",
            None,
        )


POLICIES: list[Policy] = [
    StackValidationPolicy(
        name="service-signing-configured",
        description="Every service's images must be signed: an enforcing admission policy verifies them.",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
        validate=service_signing_configured,
    ),
    ResourceValidationPolicy(
        name="private-key-in-secrets-only",
        description="Private key material appears only in secret inputs (Actions secrets, Kubernetes Secrets).",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.CRITICAL,
        validate=private_key_in_secrets_only,
    ),
]
