"""The pack decodes each resource's properties once per call (policies/shared_props.py) and answers exactly
as the SDK as it ships does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pulumi_policy.policy as sdk
import pytest
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies import shared_props
from policies.catalog import PACK_NAME, POLICIES
from policies.plaintext import strings
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


def _answers(
    run: ProgramRun, policies: list[Policy] = POLICIES, dress: Callable[[Any], Any] = lambda message: message
) -> list[bytes]:
    """The serialized answers to an Analyze call per resource and to the AnalyzeStack call; `dress` may
    add to each request's resource before it is sent."""
    servicer = sdk._PolicyAnalyzerServicer(
        PACK_NAME, "0.0.1", policies, EnforcementLevel.MANDATORY, None, "", None, None, None, None, None
    )
    answers = [servicer.Analyze(dress(_analyze_request(r)), None) for r in run.resources]
    stack = analyzer_pb2.AnalyzeStackRequest(
        resources=[dress(_stack_resource(r)) for r in run.resources] + [_root_stack_resource(run)]
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


def _options(opts: Any) -> tuple[Any, ...]:
    timeouts = opts.custom_timeouts
    return (
        opts.protect,
        list(opts.ignore_changes),
        opts.delete_before_replace,
        list(opts.aliases),
        (timeouts.create_seconds, timeouts.update_seconds, timeouts.delete_seconds),
        list(opts.additional_secret_outputs),
        opts.parent,
    )


def _provider(provider: Any) -> Any:
    return provider and (provider.resource_type, provider.urn, provider.name, list(strings(provider.props)))


def _seen_resource(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    seen = (args.resource_type, args.urn, args.name, list(strings(args.props)), _options(args.opts))
    report_violation(repr((*seen, _provider(args.provider))), None)


def _seen_stack(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for r in args.resources:
        links = (
            r.parent and (r.parent.urn, any(r.parent is other for other in args.resources)),
            [d.urn for d in r.dependencies],
            {key: [d.urn for d in deps] for key, deps in r.property_dependencies.items()},
        )
        seen = (
            r.resource_type,
            r.name,
            list(strings(r.props)),
            _options(r.opts),
            _provider(r.provider),
            links,
        )
        report_violation(repr(seen), r.urn)


def _clears_its_list(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    report_violation(f"{len(args.resources)} resources", None)
    args.resources.clear()


SEEING = [
    ResourceValidationPolicy(name="sees-resource", description="what it sees", validate=_seen_resource),
    StackValidationPolicy(name="clears-its-list", description="clears", validate=_clears_its_list),
    StackValidationPolicy(name="sees-stack", description="what it sees", validate=_seen_stack),
    StackValidationPolicy(name="sees-stack-again", description="what it sees", validate=_seen_stack),
]


def _dressed(message: Any) -> Any:
    """Every option and a provider set, as the engine may send them."""
    options = message.options
    options.protect = options.deleteBeforeReplaceDefined = options.deleteBeforeReplace = True
    options.ignoreChanges.append("spec")
    options.aliases.append(message.urn + "-old")
    options.additionalSecretOutputs.append("status")
    options.customTimeouts.create, options.customTimeouts.delete = 60.0, 30.0
    provider = message.provider
    provider.type, provider.name = "pulumi:providers:kubernetes", "cluster"
    provider.urn = "urn:pulumi:test::roadbike::pulumi:providers:kubernetes::cluster"
    provider.properties.update({"namespace": message.name, "version": "4.0.0"})
    return message


@pytest.mark.parametrize("dress", [lambda message: message, _dressed], ids=["as-sent", "dressed"])
def test_each_policy_sees_what_the_sdk_as_it_ships_shows_it(dress: Callable[[Any], Any]) -> None:
    run = run_raw(stack_raw("dev"), stack="test")
    stock = _answers(run, SEEING, dress)
    assert shared_props.install()
    assert _answers(run, SEEING, dress) == stock
    assert any(b"providers:kubernetes::cluster" in answer for answer in stock) == (dress is _dressed)


def test_each_resource_is_decoded_once_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    run = run_raw(stack_raw("dev"), stack="test")
    decoded: list[object] = []
    real = shared_props.json_format.MessageToDict
    monkeypatch.setattr(
        shared_props.json_format, "MessageToDict", lambda m, *a, **k: decoded.append(m) or real(m, *a, **k)
    )
    assert shared_props.install()
    _answers(run)
    # One decoding per Analyze call and, in the AnalyzeStack call, one per resource sent (outputs equal to
    # another's, like the stack's and the platform component's, are decoded for themselves: the memo goes
    # by the message object, not its bytes): not one per policy and resource.
    sent = [_stack_resource(r) for r in run.resources] + [_root_stack_resource(run)]
    assert len(decoded) == len(run.resources) + len(sent)
