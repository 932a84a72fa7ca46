"""Pure renderers of a service repository's settings (pulumi-github inputs, snake_case)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from components.config import Service, StackConfig
from components.naming import release_environment

DEFAULT_BRANCH = "main"
PROD = "prod"
REQUIRED_APPROVALS = 1
# Release tags (v<SemVer>); the release workflow validates the full SemVer grammar.
RELEASE_TAG_PATTERN = "v*"
WEBHOOK_EVENTS = ("push", "release", "workflow_run")


def repository_args(config: StackConfig, service: Service) -> dict[str, Any]:
    return {
        "name": service.repository,
        "description": f"{service.name}: Go service delivered by roadbike ({config.environment})",
        "visibility": "private",
        "vulnerability_alerts": True,
        "has_issues": True,
        "has_wiki": False,
        "allow_merge_commit": False,
        "allow_squash_merge": True,
        "allow_rebase_merge": False,
        "delete_branch_on_merge": True,
        "archive_on_destroy": True,
    }


def default_branch_ruleset_args(
    config: StackConfig, service: Service, required_checks: Sequence[str] = ()
) -> dict[str, Any]:
    """The ruleset on the default branch: no force push or deletion, a reviewed pull request whose
    required checks (the generated CI job names) pass on a branch that is up to date."""
    rules: dict[str, Any] = {
        "deletion": True,
        "non_fast_forward": True,
        "pull_request": {
            "required_approving_review_count": REQUIRED_APPROVALS,
            "dismiss_stale_reviews_on_push": True,
            "require_last_push_approval": True,
            "required_review_thread_resolution": True,
            "allowed_merge_methods": ["squash"],
        },
    }
    if required_checks:
        rules["required_status_checks"] = {
            "required_checks": [{"context": check} for check in required_checks],
            "strict_required_status_checks_policy": True,
        }
    args: dict[str, Any] = {
        "name": "default-branch",
        "repository": service.repository,
        "target": "branch",
        "enforcement": "active",
        "conditions": {"ref_name": {"includes": ["~DEFAULT_BRANCH"], "excludes": []}},
        "rules": rules,
    }
    if config.github.deployer_app_id is not None:
        # Only the deploying app may commit directly: that is how the generated files are updated.
        args["bypass_actors"] = [
            {"actor_type": "Integration", "actor_id": config.github.deployer_app_id, "bypass_mode": "always"}
        ]
    return args


def environment_args(config: StackConfig, service: Service) -> dict[str, Any]:
    """The stack tier's environment: releases only from tags; in prod, approved by named reviewers."""
    environment = release_environment(config)
    args: dict[str, Any] = {
        "repository": service.repository,
        "environment": environment,
        "deployment_branch_policy": {"protected_branches": False, "custom_branch_policies": True},
    }
    if environment == PROD:
        if config.github.prod_reviewers:
            args["reviewers"] = [{"users": list(config.github.prod_reviewers)}]
        args["prevent_self_review"] = True
        args["can_admins_bypass"] = False
    return args


def deployment_policy_args(config: StackConfig, service: Service) -> dict[str, Any]:
    """Only release tags may deploy to the environment (its secrets stay out of branch builds)."""
    return {
        "repository": service.repository,
        "environment": release_environment(config),
        "tag_pattern": RELEASE_TAG_PATTERN,
    }


def webhook_args(config: StackConfig, service: Service) -> dict[str, Any] | None:
    """The delivery webhook (JSON, TLS verified); its HMAC secret is added by the component."""
    if config.github.webhook_url is None:
        return None
    return {
        "repository": service.repository,
        "events": list(WEBHOOK_EVENTS),
        "active": True,
        "configuration": {"url": config.github.webhook_url, "content_type": "json", "insecure_ssl": False},
    }
