"""Policies on GitHub repositories and the protection of their default branch."""

from __future__ import annotations

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

from policies.resource_types import BRANCH_PROTECTION, REPOSITORY, REPOSITORY_RULESET
from policies.util import as_list, get_path, of_type

DEFAULT_BRANCH_REFS = {"~DEFAULT_BRANCH", "refs/heads/main", "main"}


def _vulnerability_alerts(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type == REPOSITORY and get_path(args.props, "vulnerabilityAlerts") is not True:
        report_violation(
            f"repository {get_path(args.props, 'name', default=args.name)!r} does not enable "
            "vulnerability alerts (set vulnerabilityAlerts: true)",
            None,
        )


repository_vulnerability_alerts = ResourceValidationPolicy(
    name="repository-vulnerability-alerts",
    description="Every repository has Dependabot vulnerability alerts on.",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    validate=_vulnerability_alerts,
)


def ruleset_covers_default_branch(ruleset: PolicyResource) -> bool:
    includes = as_list(get_path(ruleset.props, "conditions", "refName", "includes"))
    return get_path(ruleset.props, "target") == "branch" and any(
        ref in DEFAULT_BRANCH_REFS for ref in includes
    )


def _ruleset_blocks_force_push_and_deletion(ruleset: PolicyResource) -> bool:
    rules = get_path(ruleset.props, "rules", default={})
    active = get_path(ruleset.props, "enforcement") == "active"
    return active and rules.get("deletion") is True and rules.get("nonFastForward") is True


def _branch_protection_blocks(protection: PolicyResource) -> bool:
    props = protection.props
    return (
        get_path(props, "pattern") in DEFAULT_BRANCH_REFS
        and get_path(props, "allowsForcePushes") is not True
        and get_path(props, "allowsDeletions") is not True
    )


def _repository_key(value: object) -> str:
    return str(value or "")


def _default_branch_protected(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    protected: set[str] = set()
    for ruleset in of_type(args.resources, REPOSITORY_RULESET):
        if ruleset_covers_default_branch(ruleset) and _ruleset_blocks_force_push_and_deletion(ruleset):
            protected.add(_repository_key(get_path(ruleset.props, "repository")))
    for protection in of_type(args.resources, BRANCH_PROTECTION):
        if _branch_protection_blocks(protection):
            protected.add(_repository_key(get_path(protection.props, "repositoryId")))
    for repository in of_type(args.resources, REPOSITORY):
        name = _repository_key(get_path(repository.props, "name", default=repository.name))
        if name not in protected:
            report_violation(
                f"the default branch of repository {name!r} allows force pushes or deletion: add an active "
                "ruleset on ~DEFAULT_BRANCH with the deletion and non_fast_forward rules",
                repository.urn,
            )


default_branch_protected = StackValidationPolicy(
    name="default-branch-protected",
    description="The default branch of every repository refuses force pushes and deletion.",
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    validate=_default_branch_protected,
)

POLICIES = [repository_vulnerability_alerts, default_branch_protected]
