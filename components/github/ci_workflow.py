"""`.github/workflows/ci.yml`: lint, test with the coverage gate, govulncheck and the static builds; its job
names are the status checks the default branch ruleset requires.
"""

from __future__ import annotations

from typing import Any

from components.config import Service, StackConfig
from components.github.repository import DEFAULT_BRANCH
from components.github.steps import (
    READ_CONTENTS,
    TOOLS,
    WORKFLOW_DIRECTORY,
    build_script,
    checkout_step,
    job_definition,
    run_step,
    setup_go_step,
    test_steps,
    uses,
    workflow_document,
)

CI_WORKFLOW = WORKFLOW_DIRECTORY + "ci.yml"


# CI jobs: their names are the status checks the default branch ruleset requires.
CI_LINT, CI_TEST, CI_VULNCHECK, CI_BUILD = "lint", "test", "vulncheck", "build"


CI_JOBS: tuple[str, ...] = (CI_LINT, CI_TEST, CI_VULNCHECK, CI_BUILD)


def ci_required_checks() -> list[str]:
    """The status checks the default branch requires: exactly the CI job names."""
    return list(CI_JOBS)


def ci_workflow(config: StackConfig, service: Service) -> dict[str, Any]:
    """Push to the default branch and pull requests: verify, vet, lint, race tests, coverage, vulns, build."""
    setup = [checkout_step(), setup_go_step(service, cache=True)]
    lint = job_definition(
        CI_LINT,
        [
            *setup,
            run_step("Verify module checksums", "go mod verify"),
            run_step("Vet", "go vet ./..."),
            {
                "name": "golangci-lint",
                **uses("golangci/golangci-lint-action", {"version": TOOLS["golangci-lint"]}),
            },
        ],
        timeout=15,
        cancel_in_progress=True,
        permissions=READ_CONTENTS,
    )
    test = job_definition(
        CI_TEST,
        [*setup, *test_steps(service)],
        timeout=20,
        cancel_in_progress=True,
        permissions=READ_CONTENTS,
    )
    vulncheck = job_definition(
        CI_VULNCHECK,
        [*setup, run_step("govulncheck", f"go run {TOOLS['govulncheck']} ./...")],
        timeout=15,
        cancel_in_progress=True,
        permissions=READ_CONTENTS,
    )
    build = job_definition(
        CI_BUILD,
        [
            *setup,
            run_step(
                "Build static binaries",
                'VERSION="0.0.0-ci+${GITHUB_SHA:0:12}"\n' + build_script(service),
            ),
        ],
        timeout=15,
        cancel_in_progress=True,
        permissions=READ_CONTENTS,
    )
    on = {
        "push": {"branches": [DEFAULT_BRANCH]},
        "pull_request": {"branches": [DEFAULT_BRANCH]},
    }
    return workflow_document(
        "ci", on, {CI_LINT: lint, CI_TEST: test, CI_VULNCHECK: vulncheck, CI_BUILD: build}
    )
