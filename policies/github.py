"""Policies on the GitHub side: repository settings, the default branch ruleset, the generated workflows,
the webhook and the release environments.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any

import yaml
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
    BRANCH_PROTECTION,
    REPOSITORY,
    REPOSITORY_ENVIRONMENT,
    REPOSITORY_FILE,
    REPOSITORY_RULESET,
    REPOSITORY_WEBHOOK,
)
from policies.util import as_list, get_path, of_type

DEFAULT_BRANCH_REFS = {"~DEFAULT_BRANCH", "refs/heads/main", "main"}


def repository_vulnerability_alerts(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type == REPOSITORY and get_path(args.props, "vulnerabilityAlerts") is not True:
        report_violation(
            f"repository {get_path(args.props, 'name', default=args.name)!r} does not enable "
            "vulnerability alerts (set vulnerabilityAlerts: true)",
            None,
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


def default_branch_protected(args: StackValidationArgs, report_violation: ReportViolation) -> None:
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


WORKFLOW_DIRECTORY = ".github/workflows/"
PINNED_ACTION = re.compile(r"^[^@\s]+@[0-9a-f]{40}$")
PINNED_DOCKER = re.compile(r"^docker://[^@\s]+@sha256:[0-9a-f]{64}$")
PRIVILEGED_TRIGGERS = ("pull_request_target", "workflow_run")
UNTRUSTED_REF = re.compile(
    r"github\.event\.(?:pull_request|workflow_run)\.head|github\.head_ref|refs/pull/|"
    r"github\.event\.number|github\.event\.pull_request\.number"
)
UNTRUSTED_CHECKOUT_COMMAND = re.compile(r"\bgh\s+pr\s+checkout\b|\bgit\s+(?:fetch|checkout|pull)\b")
COSIGN_SIGN = re.compile(r"\bcosign\s+sign(?!-)\b")
COSIGN_ATTEST_SBOM = re.compile(r"\bcosign\s+attest\b[^\n]*--type[ =](?:spdxjson|spdx|cyclonedx)\b")
SBOM_ATTEST_ACTIONS = ("actions/attest-sbom",)
PROVENANCE_ACTIONS = ("actions/attest-build-provenance", "actions/attest")
REQUIRED_PLATFORMS = ("linux/amd64", "linux/arm64")
EMULATION_ACTIONS = ("docker/setup-qemu-action",)
PROD_ENVIRONMENTS = {"prod", "production"}
PLAINTEXT_SECRETS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a private key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")),
    ("a GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b")),
    ("an AWS access key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")),
    ("a Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    (
        "a password in a URL",
        re.compile(
            r"\b(?:https?|ftp|postgres(?:ql)?|mysql|redis|amqps?|mongodb(?:\+srv)?)://[^/\s:@]+:[^/\s@$]{3,}@"
        ),
    ),
)
# A part that every match of every PLAINTEXT_SECRETS pattern contains: one search for these literals
# rules out most strings, where the patterns (most starting with \b) would each scan the whole text.
PLAINTEXT_SECRET_HINT = re.compile(r"PRIVATE KEY-----|gh[pousr]_|github_pat_|AKIA|ASIA|xox[abposr]-|AIza|://")


def plaintext_secret_kinds(text: str) -> list[str]:
    """What PLAINTEXT_SECRETS finds in `text`, in their order."""
    if not PLAINTEXT_SECRET_HINT.search(text):
        return []
    return [kind for kind, pattern in PLAINTEXT_SECRETS if pattern.search(text)]


# --- reading workflows -----------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _parse(content: str) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(content, Loader=loader)
    except yaml.YAMLError:
        return None


def workflow_of(props: Any) -> Mapping[str, Any] | None:
    """The parsed workflow a RepositoryFile commits, or None when it is not a workflow."""
    path = str(get_path(props, "file", default=""))
    if not path.startswith(WORKFLOW_DIRECTORY) or not path.endswith((".yml", ".yaml")):
        return None
    document = _parse(str(get_path(props, "content", default="")))
    return document if isinstance(document, Mapping) else None


def triggers(workflow: Mapping[Any, Any]) -> dict[str, Any]:
    """Event -> its filter. YAML 1.1 loaders read the `on` key as True."""
    on = workflow.get("on", workflow.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, Mapping):
        return dict(on)
    return {str(event): None for event in as_list(on)}


def jobs(workflow: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    found = workflow.get("jobs")
    if not isinstance(found, Mapping):
        return {}
    return {str(k): v for k, v in found.items() if isinstance(v, Mapping)}


def steps(job: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [s for s in as_list(job.get("steps")) if isinstance(s, Mapping)]


def all_steps(workflow: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for job in jobs(workflow).values():
        yield from steps(job)


def action_of(step: Mapping[str, Any]) -> str:
    """`owner/repo[/path]` of a step's `uses`, without the ref."""
    return str(step.get("uses") or "").split("@", 1)[0]


def _uses(workflow: Mapping[str, Any]) -> Iterator[str]:
    for job in jobs(workflow).values():
        if job.get("uses"):
            yield str(job["uses"])
        for step in steps(job):
            if step.get("uses"):
                yield str(step["uses"])


def is_release_workflow(workflow: Mapping[str, Any]) -> bool:
    """Runs on tag pushes or on a published release: what it builds is what gets deployed."""
    events = triggers(workflow)
    push = events.get("push")
    return "release" in events or (isinstance(push, Mapping) and bool(push.get("tags")))


def _file_label(args: ResourceValidationArgs) -> str:
    repository = get_path(args.props, "repository", default="?")
    return f"{repository}:{get_path(args.props, 'file', default=args.name)}"


def workflow_file_check(check: Any) -> Any:
    """A resource validator that runs `check(workflow, label, report)` on committed workflow files."""

    @functools.wraps(check)
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type != REPOSITORY_FILE:
            return
        workflow = workflow_of(args.props)
        if workflow is not None:
            check(workflow, _file_label(args), report_violation)

    return validate


# --- workflow policies -----------------------------------------------------------------------------


@workflow_file_check
def workflow_actions_pinned(workflow: Mapping[str, Any], label: str, report: ReportViolation) -> None:
    unpinned = sorted(
        {
            ref
            for ref in _uses(workflow)
            if not (ref.startswith("./") or PINNED_ACTION.match(ref) or PINNED_DOCKER.match(ref))
        }
    )
    if unpinned:
        report(
            f"{label} uses actions by a mutable reference: {', '.join(unpinned)}. Pin each to the full "
            "40-character commit SHA of its release tag, with the tag in a comment (`@<sha> # vX.Y.Z`)",
            None,
        )


@workflow_file_check
def workflow_no_top_level_write(workflow: Mapping[str, Any], label: str, report: ReportViolation) -> None:
    fix = "set `permissions: {}` at the top and grant the minimum to each job"
    if "permissions" not in workflow:
        report(
            f"{label} has no top-level permissions, so every job gets the default token scopes: {fix}", None
        )
        return
    permissions = workflow.get("permissions")
    if permissions == "write-all":
        report(f"{label} grants write-all at the top level: {fix}", None)
    elif isinstance(permissions, Mapping):
        writes = sorted(str(scope) for scope, level in permissions.items() if level == "write")
        if writes:
            report(f"{label} grants {', '.join(writes)}: write to every job at the top level: {fix}", None)


def _untrusted_checkout(step: Mapping[str, Any]) -> bool:
    if action_of(step) == "actions/checkout":
        inputs = step.get("with")
        if isinstance(inputs, Mapping):
            return any(UNTRUSTED_REF.search(str(inputs.get(key) or "")) for key in ("ref", "repository"))
        return False
    script = str(step.get("run") or "")
    return bool(UNTRUSTED_CHECKOUT_COMMAND.search(script) and UNTRUSTED_REF.search(script))


@workflow_file_check
def workflow_no_untrusted_checkout(workflow: Mapping[str, Any], label: str, report: ReportViolation) -> None:
    privileged = [event for event in PRIVILEGED_TRIGGERS if event in triggers(workflow)]
    if not privileged:
        return
    for job_id, job in jobs(workflow).items():
        if any(_untrusted_checkout(step) for step in steps(job)):
            report(
                f"{label}: job {job_id!r} checks out pull request code in a {'/'.join(privileged)} workflow, "
                "which runs with the base repository's secrets and write token. Run untrusted code under "
                "`pull_request` instead, or pass only data (artifacts) to the privileged workflow",
                None,
            )


@workflow_file_check
def release_workflow_signs(workflow: Mapping[str, Any], label: str, report: ReportViolation) -> None:
    if not is_release_workflow(workflow):
        return
    scripts = [str(step.get("run") or "") for step in all_steps(workflow)]
    actions = {action_of(step) for step in all_steps(workflow)}
    missing = []
    if not any(COSIGN_SIGN.search(script) for script in scripts):
        missing.append("a `cosign sign` of the image digest")
    if not (any(COSIGN_ATTEST_SBOM.search(s) for s in scripts) or actions & set(SBOM_ATTEST_ACTIONS)):
        missing.append("an SBOM attestation (`cosign attest --type spdxjson`)")
    if not actions & set(PROVENANCE_ACTIONS):
        missing.append("a build provenance attestation (actions/attest-build-provenance)")
    if missing:
        report(
            f"{label} publishes releases without {'; '.join(missing)}. Set roadbike:signing.mode "
            "to keypair or keyless so that the generated release workflow signs and attests",
            None,
        )


def _built_platforms(workflow: Mapping[str, Any]) -> set[str] | None:
    """Platforms the image build steps name; None when the workflow builds no image."""
    builds = [s for s in all_steps(workflow) if action_of(s) == "docker/build-push-action"]
    if not builds:
        return None
    platforms: set[str] = set()
    for step in builds:
        value = str(get_path(step, "with", "platforms", default=""))
        platforms.update(p.strip() for p in re.split(r"[,\n]", value) if p.strip())
    return platforms


@workflow_file_check
def release_workflow_multi_arch(workflow: Mapping[str, Any], label: str, report: ReportViolation) -> None:
    if not is_release_workflow(workflow):
        return
    platforms = _built_platforms(workflow)
    if platforms is None:
        return
    missing = [p for p in REQUIRED_PLATFORMS if p not in platforms]
    if missing:
        report(
            f"{label} builds images for {', '.join(sorted(platforms)) or 'no platform'} only; add "
            f"{', '.join(missing)} (list both linux/amd64 and linux/arm64 in the service's platforms)",
            None,
        )
    emulated = sorted({action_of(s) for s in all_steps(workflow)} & set(EMULATION_ACTIONS))
    if emulated:
        report(
            f"{label} emulates architectures with {', '.join(emulated)}; build each platform on its "
            "native runner (ubuntu-24.04, ubuntu-24.04-arm) instead",
            None,
        )


# --- files, webhooks, environments -----------------------------------------------------------------


def repository_file_no_plaintext_secret(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    if args.resource_type != REPOSITORY_FILE:
        return
    content = str(get_path(args.props, "content", default=""))
    found = plaintext_secret_kinds(content)
    if found:
        report_violation(
            f"{_file_label(args)} contains {' and '.join(found)} in plain text, readable by everyone "
            "with access to the repository: remove it, rotate it, and read it from an Actions secret",
            None,
        )


def _has_secret(configuration: Any) -> bool:
    try:
        return bool(get_path(configuration, "secret"))
    except UnknownValueError:
        # Generated by a resource that does not exist during preview (pulumi-random): there will be a
        # value; the engine checks it again, known, at `pulumi up`.
        return True


def webhook_secret_and_tls(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != REPOSITORY_WEBHOOK:
        return
    configuration = get_path(args.props, "configuration", default={})
    url = str(get_path(configuration, "url", default=""))
    label = f"the webhook of repository {get_path(args.props, 'repository', default='?')!r} to {url!r}"
    if not _has_secret(configuration):
        report_violation(
            f"{label} has no secret, so its receiver cannot verify X-Hub-Signature-256: set "
            "configuration.secret (roadbike generates one with pulumi-random)",
            None,
        )
    if get_path(configuration, "insecureSsl") in (True, "1", "true", 1):
        report_violation(
            f"{label} skips TLS certificate verification: set configuration.insecureSsl false", None
        )
    if not url.startswith("https://"):
        report_violation(f"{label} is not an https:// URL: deliveries would travel in clear text", None)


def prod_environment_reviewers(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != REPOSITORY_ENVIRONMENT:
        return
    environment = str(get_path(args.props, "environment", default=""))
    if environment.lower() not in PROD_ENVIRONMENTS:
        return
    reviewers = [
        reviewer
        for entry in as_list(get_path(args.props, "reviewers"))
        for reviewer in (*as_list(get_path(entry, "users")), *as_list(get_path(entry, "teams")))
    ]
    if not reviewers:
        report_violation(
            f"environment {environment!r} of repository {get_path(args.props, 'repository', default='?')!r} "
            "deploys without an approval: list the GitHub user IDs of its approvers in "
            "roadbike:github.prodReviewers",
            None,
        )


# --- default branch (stack) ------------------------------------------------------------------------


def _repository_of(resource: PolicyResource) -> str:
    return str(get_path(resource.props, "repository", default=""))


def _active_default_branch_rulesets(resources: Sequence[PolicyResource]) -> dict[str, list[PolicyResource]]:
    by_repository: dict[str, list[PolicyResource]] = {}
    for ruleset in of_type(resources, REPOSITORY_RULESET):
        if ruleset_covers_default_branch(ruleset) and get_path(ruleset.props, "enforcement") == "active":
            by_repository.setdefault(_repository_of(ruleset), []).append(ruleset)
    return by_repository


def _required_checks(rulesets: list[PolicyResource], strict_only: bool) -> set[str]:
    checks: set[str] = set()
    for ruleset in rulesets:
        rule = get_path(ruleset.props, "rules", "requiredStatusChecks")
        if rule is None or (strict_only and get_path(rule, "strictRequiredStatusChecksPolicy") is not True):
            continue
        checks.update(
            str(get_path(c, "context", default="")) for c in as_list(get_path(rule, "requiredChecks"))
        )
    return checks


def ci_check_names(workflow: Mapping[str, Any]) -> list[str]:
    """The status checks a pull request workflow reports: each job's name (or id)."""
    if "pull_request" not in triggers(workflow):
        return []
    return [str(job.get("name") or job_id) for job_id, job in jobs(workflow).items()]


def default_branch_requires_ci_checks(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    rulesets = _active_default_branch_rulesets(args.resources)
    created = {str(get_path(r.props, "name", default=r.name)) for r in of_type(args.resources, REPOSITORY)}
    for file in of_type(args.resources, REPOSITORY_FILE):
        workflow = workflow_of(file.props)
        names = ci_check_names(workflow) if workflow is not None else []
        if not names:
            continue
        repository = _repository_of(file)
        if repository not in rulesets and repository not in created:
            report_violation(
                f"{get_path(file.props, 'file')} of repository {repository!r} runs on pull requests, but "
                "this stack has no active default-branch ruleset of that repository to require its checks "
                f"{', '.join(names)}: commit it from the stack that owns the repository "
                "(roadbike:github.ownsRepositories: true), which creates the ruleset",
                file.urn,
            )
            continue
        required = _required_checks(rulesets.get(repository, []), strict_only=True)
        missing = [name for name in names if name not in required]
        if missing:
            report_violation(
                f"the default branch of repository {repository!r} does not require the checks "
                f"{', '.join(missing)} of {get_path(file.props, 'file')}: add them to the required status "
                "checks of its active default-branch ruleset, with strict (up-to-date) checks",
                file.urn,
            )


def _approvals(ruleset: PolicyResource) -> int:
    count = get_path(ruleset.props, "rules", "pullRequest", "requiredApprovingReviewCount", default=0)
    return int(count) if isinstance(count, (int, float)) else 0


def _protection_approvals(protection: PolicyResource) -> int:
    reviews = as_list(get_path(protection.props, "requiredPullRequestReviews"))
    counts = [get_path(r, "requiredApprovingReviewCount", default=0) for r in reviews]
    return max((int(c) for c in counts if isinstance(c, (int, float))), default=0)


def default_branch_requires_review(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    reviewed = {
        repository
        for repository, rulesets in _active_default_branch_rulesets(args.resources).items()
        if any(_approvals(ruleset) >= 1 for ruleset in rulesets)
    }
    reviewed.update(
        str(get_path(p.props, "repositoryId", default=""))
        for p in of_type(args.resources, BRANCH_PROTECTION)
        if _protection_approvals(p) >= 1
    )
    for repository in of_type(args.resources, REPOSITORY):
        name = str(get_path(repository.props, "name", default=repository.name))
        if name not in reviewed:
            report_violation(
                f"the default branch of repository {name!r} takes changes without an approved pull request: "
                "add a pull_request rule with required_approving_review_count >= 1 to its active "
                "default-branch ruleset",
                repository.urn,
            )


POLICIES: list[Policy] = [
    ResourceValidationPolicy(
        name="repository-vulnerability-alerts",
        description="Every repository has Dependabot vulnerability alerts on.",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
        validate=repository_vulnerability_alerts,
    ),
    StackValidationPolicy(
        name="default-branch-protected",
        description="The default branch of every repository refuses force pushes and deletion.",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
        validate=default_branch_protected,
    ),
    ResourceValidationPolicy(
        name="workflow-actions-pinned",
        description="Every action a committed workflow uses is pinned to a full commit SHA.",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
        validate=workflow_actions_pinned,
    ),
    ResourceValidationPolicy(
        name="workflow-no-top-level-write",
        description="Committed workflows grant no write permission at the top level (permissions are per job).",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
        validate=workflow_no_top_level_write,
    ),
    ResourceValidationPolicy(
        name="workflow-no-untrusted-checkout",
        description="No pull_request_target or workflow_run workflow checks out untrusted pull request code.",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.CRITICAL,
        validate=workflow_no_untrusted_checkout,
    ),
    ResourceValidationPolicy(
        name="release-workflow-signs",
        description="Release workflows sign the image by digest and attest its SBOM and build provenance.",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
        validate=release_workflow_signs,
    ),
    ResourceValidationPolicy(
        name="release-workflow-multi-arch",
        description="Release workflows build linux/amd64 and linux/arm64 images, each on a native runner.",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.MEDIUM,
        validate=release_workflow_multi_arch,
    ),
    ResourceValidationPolicy(
        name="repository-file-no-plaintext-secret",
        description="No file committed to a repository holds a token, password or private key in plain text.",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.CRITICAL,
        validate=repository_file_no_plaintext_secret,
    ),
    ResourceValidationPolicy(
        name="webhook-secret-and-tls",
        description="Repository webhooks are signed with a secret and delivered over verified TLS.",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
        validate=webhook_secret_and_tls,
    ),
    ResourceValidationPolicy(
        name="prod-environment-reviewers",
        description="The prod environment of every repository requires a reviewer's approval.",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
        validate=prod_environment_reviewers,
    ),
    StackValidationPolicy(
        name="default-branch-requires-ci-checks",
        description="The default branch ruleset requires every CI job as an up-to-date status check.",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
        validate=default_branch_requires_ci_checks,
    ),
    StackValidationPolicy(
        name="default-branch-requires-review",
        description="Changes reach the default branch of every repository only by an approved pull request.",
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
        validate=default_branch_requires_review,
    ),
]
