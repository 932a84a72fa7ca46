"""Policies on delivery health: where the stack configures it, every release workflow reports itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies.github import PROD_ENVIRONMENTS, is_release_workflow, jobs, steps, workflow_of
from policies.resource_types import DELIVERY_HEALTH, REPOSITORY_FILE
from policies.util import as_list, get_path, of_type

PUSH_PATH = "/metrics/job/"


def _always(entity: Mapping[str, Any]) -> bool:
    return "always()" in str(entity.get("if") or "")


def _reports(workflow: Mapping[str, Any]) -> bool:
    """A job that always runs after every other job has a step that pushes to the Pushgateway."""
    all_jobs = jobs(workflow)
    for name, job in all_jobs.items():
        needs = {str(n) for n in as_list(job.get("needs"))}
        if not _always(job) or needs != set(all_jobs) - {name}:
            continue
        for step in steps(job):
            env = step.get("env")
            if (
                _always(step)
                and isinstance(env, Mapping)
                and "PUSHGATEWAY_URL" in env
                and PUSH_PATH in str(step.get("run") or "")
            ):
                return True
    return False


def _unreported(args: StackValidationArgs, prod: bool) -> list[tuple[str, str]]:
    """(label, urn) of each release workflow that does not report, when delivery health is configured
    for a stack whose environment is (`prod`) or is not prod."""
    configured = [
        r
        for r in of_type(args.resources, DELIVERY_HEALTH)
        if (str(get_path(r.props, "environment", default="")).lower() in PROD_ENVIRONMENTS) == prod
    ]
    if not configured:
        return []
    found = []
    for file in of_type(args.resources, REPOSITORY_FILE):
        workflow = workflow_of(file.props)
        if workflow is None or not is_release_workflow(workflow) or _reports(workflow):
            continue
        label = (
            f"{get_path(file.props, 'repository', default='?')}:{get_path(file.props, 'file', default='?')}"
        )
        found.append((label, file.urn))
    return found


def _message(label: str) -> str:
    return (
        f"release workflow {label} does not report to the Pushgateway although the stack configures "
        "delivery health (roadbike:delivery): its releases are missing from the DORA measures; add a "
        "last job with `if: always()` that needs every job and pushes the release's facts "
        "(regenerate it with `pulumi up`)"
    )


def release_workflow_reports_delivery(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for label, urn in _unreported(args, prod=False):
        report_violation(_message(label), urn)


def prod_release_workflow_reports_delivery(
    args: StackValidationArgs, report_violation: ReportViolation
) -> None:
    for label, urn in _unreported(args, prod=True):
        report_violation(_message(label), urn)


POLICIES: list[Policy] = [
    StackValidationPolicy(
        name="release-workflow-reports-delivery",
        description="Where delivery health is configured, every release workflow reports to the Pushgateway.",
        enforcement_level=EnforcementLevel.ADVISORY,
        severity=Severity.LOW,
        validate=release_workflow_reports_delivery,
    ),
    StackValidationPolicy(
        name="prod-release-workflow-reports-delivery",
        description="In prod, with delivery health configured, every release workflow reports to the Pushgateway.",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.MEDIUM,
        validate=prod_release_workflow_reports_delivery,
    ),
]
