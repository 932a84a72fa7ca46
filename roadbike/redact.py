"""Turning engine-form values into what may be written down: secrets redacted, numbers as written."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pulumi.runtime import rpc

from roadbike.analyzer import PolicyResult
from roadbike.program import SECRET_SIG, SECRET_SIG_KEY, ProgramRun

REDACTED = "[secret]"
# How `pulumi preview` shows a value that is not known until the resource exists.
UNKNOWN_SHOWN = "output<string>"


def redact(value: Any) -> Any:
    """Replace every secret-wrapped value by `[secret]` and every value unknown at preview by
    `output<string>`; integral floats (protobuf numbers) become ints.

    A secret map or list keeps its shape (`stringData: {htpasswd: "[secret]"}`), so a redacted object still
    reads, and validates, as the kind of object it is.
    """
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG:
            return _redacted_shape(value.get("value"))
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value == rpc.UNKNOWN:
        return UNKNOWN_SHOWN
    return value


def _redacted_shape(value: Any) -> Any:
    if isinstance(value, dict) and value.get(SECRET_SIG_KEY) != SECRET_SIG:
        return {k: _redacted_shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted_shape(v) for v in value]
    return REDACTED


def secret_texts(value: Any, found: set[str] | None = None) -> set[str]:
    """Every plain string found inside a secret, to scrub from free text such as policy messages."""
    found = set() if found is None else found
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG:
            _strings(value.get("value"), found)
        else:
            for v in value.values():
                secret_texts(v, found)
    elif isinstance(value, list):
        for v in value:
            secret_texts(v, found)
    return found


def _strings(value: Any, found: set[str]) -> None:
    if isinstance(value, str) and len(value) >= 4:
        found.add(value)
    elif isinstance(value, dict):
        for v in value.values():
            _strings(v, found)
    elif isinstance(value, list):
        for v in value:
            _strings(v, found)


def scrub(text: str, secrets: set[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def redact_run(run: ProgramRun, policy: PolicyResult) -> tuple[ProgramRun, PolicyResult]:
    """The run and its policy result as they may be written down, made once when the run is recorded:
    every secret input and output `[secret]`, every secret string scrubbed from the policy messages.
    Every writer of the plan (files, console, reports) works on these and never sees a secret."""
    safe_run, secrets = redact_program_run(run)
    return safe_run, scrub_policy(policy, secrets)


def redact_program_run(run: ProgramRun) -> tuple[ProgramRun, set[str]]:
    """The run with every secret input and output `[secret]`, and the secret strings it held (for
    `scrub_policy`): the half of `redact_run` that needs no policy result."""
    secrets: set[str] = set()
    for resource in run.resources:
        secret_texts(resource.inputs, secrets)
    secret_texts(run.outputs, secrets)
    safe_run = replace(
        run,
        resources=[replace(r, inputs=redact(r.inputs)) for r in run.resources],
        outputs=redact(run.outputs),
    )
    return safe_run, secrets


def scrub_policy(policy: PolicyResult, secrets: set[str]) -> PolicyResult:
    violations = [replace(v, message=scrub(v.message, secrets)) for v in policy.violations]
    return replace(policy, violations=violations)
