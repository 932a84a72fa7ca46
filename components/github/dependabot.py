"""`.github/dependabot.yml`: weekly updates of the Go modules and the pinned actions."""

from __future__ import annotations

from typing import Any

from components.config import Service, StackConfig

DEPENDABOT = ".github/dependabot.yml"


def dependabot_config(config: StackConfig, service: Service) -> dict[str, Any]:
    """Weekly gomod and github-actions updates, each held back a week after its release."""

    def update(ecosystem: str, prefix: str) -> dict[str, Any]:
        return {
            "package-ecosystem": ecosystem,
            "directory": "/",
            "schedule": {"interval": "weekly"},
            "cooldown": {"default-days": 7},
            "open-pull-requests-limit": 5,
            "commit-message": {"prefix": prefix},
        }

    return {"version": 2, "updates": [update("gomod", "deps"), update("github-actions", "ci")]}
