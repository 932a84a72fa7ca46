"""Credentials in clear: a token, key or password in any value that is stored and shown in plain text.

Repository files have their own policy (`repository-file-no-plaintext-secret`); this one reads every
other resource's inputs (Actions variables, labels, annotations, ConfigMaps, every Kubernetes object but
a Secret) and the stack outputs, leaving out only the inputs a provider always keeps secret.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from policies.github import plaintext_secret_kinds
from policies.resource_types import KUBERNETES_SECRET, REPOSITORY_FILE, SECRET_VALUE_FIELDS
from policies.util import resource_label

STACK = "pulumi:pulumi:Stack"
# Inputs that hold a secret by construction (wrapped in pulumi.Output.secret by the components).
SECRET_INPUTS: dict[str, tuple[str, ...]] = {
    **SECRET_VALUE_FIELDS,
    KUBERNETES_SECRET: ("data", "stringData"),
    "github:index/repositoryWebhook:RepositoryWebhook": ("configuration.secret",),
    "docker-build:index:Image": ("registries",),
    "pulumi-python:dynamic/roadbike:CosignKeyPair": ("password", "privateKey"),
    "random:index/randomPassword:RandomPassword": ("result", "bcryptHash"),
}
SKIPPED_TYPES = frozenset({REPOSITORY_FILE})


def strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, text) of every known string, keys too (a label key can carry a token as well as its value).
    A value unknown during preview is passed over: the engine analyzes the resource again at `pulumi up`."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key in value:
            child = f"{path}.{key}" if path else str(key)
            yield child, str(key)
            try:
                inner = value[key]
            except UnknownValueError:
                continue
            yield from strings(inner, child)
    elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        for index in range(len(value)):
            try:
                item = value[index]
            except UnknownValueError:
                continue
            yield from strings(item, f"{path}[{index}]")


def _is_secret_input(resource_type: str, path: str) -> bool:
    return any(
        path == field or path.startswith((f"{field}.", f"{field}["))
        for field in SECRET_INPUTS.get(resource_type, ())
    )


def credentials_in_clear(resource_type: str, props: Any) -> list[tuple[str, str]]:
    """(path, what) for each credential found outside the resource's secret inputs."""
    found: list[tuple[str, str]] = []
    for path, text in strings(props):
        kinds = plaintext_secret_kinds(text)
        if kinds and not _is_secret_input(resource_type, path):
            found.extend((path, kind) for kind in kinds)
    return sorted(set(found))


def _message(label: str, found: list[tuple[str, str]]) -> str:
    shown = ", ".join(f"{what} in {path}" for path, what in found[:5])
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    return (
        f"{label} holds {shown}{more}, stored and shown in clear (state, plan, the GitHub and Kubernetes "
        "APIs): remove it, rotate it, and pass it only as a secret (pulumi config set --secret, an "
        "Actions secret, a Kubernetes Secret)"
    )


def no_plaintext_secret(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type in SKIPPED_TYPES:
        return
    found = credentials_in_clear(args.resource_type, args.props)
    if found:
        report_violation(_message(resource_label(args), found), None)


def no_plaintext_secret_in_outputs(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for resource in args.resources:
        if resource.resource_type != STACK:
            continue
        found = credentials_in_clear(STACK, resource.props)
        if found:
            report_violation(_message("the stack outputs", found), resource.urn)


POLICIES: list[Policy] = [
    ResourceValidationPolicy(
        name="no-plaintext-secret",
        description="No token, key or password in an input stored in clear (variables, labels, annotations, objects).",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=no_plaintext_secret,
        severity=Severity.CRITICAL,
    ),
    StackValidationPolicy(
        name="no-plaintext-secret-in-outputs",
        description="No token, key or password in the stack outputs in clear.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=no_plaintext_secret_in_outputs,
        severity=Severity.CRITICAL,
    ),
]
