"""Pure renderers of a service repository's settings (pulumi-github inputs, snake_case)."""

from __future__ import annotations

from typing import Any

from components.config import Service, StackConfig

DEFAULT_BRANCH = "main"


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


def default_branch_ruleset_args(config: StackConfig, service: Service) -> dict[str, Any]:
    """The ruleset on the default branch: no force push, no deletion."""
    return {
        "name": "default-branch",
        "repository": service.repository,
        "target": "branch",
        "enforcement": "active",
        "conditions": {"ref_name": {"includes": ["~DEFAULT_BRANCH"], "excludes": []}},
        "rules": {
            "deletion": True,
            "non_fast_forward": True,
        },
    }
