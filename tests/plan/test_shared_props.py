"""The pack decodes each resource's properties once per call (policies/shared_props.py) and answers exactly
as the SDK as it ships does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pulumi_policy.policy as sdk
import pytest
from pulumi_policy import EnforcementLevel

from policies import shared_props
from policies.catalog import PACK_NAME, POLICIES
from roadbike.analyzer import _analyze_request, _root_stack_resource, _stack_resource, analyzer_pb2
from roadbike.program import ProgramRun
from roadbike.stackfile import load_stack
from tests.helpers import REPO, run_raw, stack_raw

FIXTURES = ("insecure", "insecure-supply-chain", "prod-chaos")


@pytest.fixture(autouse=True)
def stock_sdk() -> Iterator[None]:
    shared_props.uninstall()
    yield
    shared_props.uninstall()


def _answers(run: ProgramRun) -> list[bytes]:
    servicer = sdk._PolicyAnalyzerServicer(
        PACK_NAME, "0.0.1", POLICIES, EnforcementLevel.MANDATORY, None, "", None, None, None, None, None
    )
    answers = [servicer.Analyze(_analyze_request(r), None) for r in run.resources]
    stack = analyzer_pb2.AnalyzeStackRequest(
        resources=[_stack_resource(r) for r in run.resources] + [_root_stack_resource(run)]
    )
    answers.append(servicer.AnalyzeStack(stack, None))
    return [answer.SerializeToString(deterministic=True) for answer in answers]


def _fixture_raw(name: str) -> dict[str, Any]:
    return load_stack(REPO / "tests" / "fixtures" / f"Pulumi.{name}.yaml")[0].raw


@pytest.mark.parametrize("stack", ["dev", *FIXTURES])
def test_the_pack_answers_as_the_sdk_as_it_ships(stack: str) -> None:
    raw = stack_raw(stack) if stack == "dev" else _fixture_raw(stack)
    run = run_raw(raw, stack="test")
    stock = _answers(run)
    assert shared_props.install()
    assert _answers(run) == stock
    if stack != "dev":
        assert any(stock), f"{stack}: the fixture should violate policies, so the comparison means something"


def test_each_resource_is_decoded_once_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    run = run_raw(stack_raw("dev"), stack="test")
    decoded: list[object] = []
    real = shared_props.json_format.MessageToDict
    monkeypatch.setattr(
        shared_props.json_format, "MessageToDict", lambda m, *a, **k: decoded.append(m) or real(m, *a, **k)
    )
    assert shared_props.install()
    _answers(run)
    # One decoding per Analyze call; in the AnalyzeStack call one per distinct set of properties among the
    # resources' outputs and the stack's own (the platform component's outputs are the stack's): not one
    # per policy and resource.
    sent = [_stack_resource(r) for r in run.resources] + [_root_stack_resource(run)]
    stack_call = {resource.properties.SerializeToString(deterministic=True) for resource in sent}
    assert len(decoded) == len(run.resources) + len(stack_call)
