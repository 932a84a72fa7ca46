"""The delivery policies through the real pack over the Analyzer protocol: a release workflow that does
not report is flagged where delivery health is configured (advisory, mandatory in prod)."""

from __future__ import annotations

import copy

import yaml

from components.github.delivery_report import RELEASE_REPORT
from roadbike.analyzer import PolicyPackProcess, analyze
from roadbike.program import ProgramRun
from tests.helpers import run_raw, stack_raw, violated

REPOSITORY_FILE = "github:index/repositoryFile:RepositoryFile"
DELIVERY_HEALTH = "roadbike:delivery:DeliveryHealth"
ADVISORY, MANDATORY = "release-workflow-reports-delivery", "prod-release-workflow-reports-delivery"


def without_report(run: ProgramRun) -> ProgramRun:
    """The same stack with each release workflow's report job taken out."""
    changed = copy.deepcopy(run)
    for resource in changed.resources:
        file = str(resource.inputs.get("file", ""))
        if resource.type == REPOSITORY_FILE and "/release-" in file:
            workflow = yaml.safe_load(resource.inputs["content"])
            del workflow["jobs"][RELEASE_REPORT]
            resource.inputs["content"] = yaml.safe_dump(workflow)
    return changed


def test_committed_stacks_report_every_release(pack: PolicyPackProcess) -> None:
    for stack in ("dev", "prod"):
        result = analyze(pack, run_raw(stack_raw(stack), stack=stack), {})
        assert violated(result, ADVISORY) == [] and violated(result, MANDATORY) == [], stack


def test_unreported_release_is_advisory_outside_prod(pack: PolicyPackProcess) -> None:
    result = analyze(pack, without_report(run_raw(stack_raw("dev"))), {})
    messages = violated(result, ADVISORY)
    assert len(messages) == 2, messages
    assert all("does not report to the Pushgateway" in m for m in messages)
    assert any("go-http-server:.github/workflows/release-dev.yml" in m for m in messages)
    assert violated(result, MANDATORY) == []
    levels = {v.enforcement_level for v in result.violations if v.policy == ADVISORY}
    assert levels == {"advisory"}


def test_unreported_release_is_mandatory_in_prod(pack: PolicyPackProcess) -> None:
    result = analyze(pack, without_report(run_raw(stack_raw("prod"), stack="prod")), {})
    assert len(violated(result, MANDATORY)) == 2
    assert violated(result, ADVISORY) == []
    levels = {v.enforcement_level for v in result.violations if v.policy == MANDATORY}
    assert levels == {"mandatory"}


def test_without_delivery_health_nothing_is_asked(pack: PolicyPackProcess) -> None:
    raw = stack_raw("prod")
    del raw["delivery"]
    run = run_raw(raw, stack="prod")
    assert not [r for r in run.resources if r.type == DELIVERY_HEALTH]
    result = analyze(pack, run, {})
    assert violated(result, MANDATORY) == [] and violated(result, ADVISORY) == []
