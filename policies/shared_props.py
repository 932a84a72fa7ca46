"""Each resource decoded once per call into the pack, not once per policy.

pulumi-policy 1.21's `Analyze` decodes the request's properties (protobuf Struct -> dict -> unknown-checking
proxy) and options and provider again for every resource policy, and `AnalyzeStack` builds every resource
(properties, options, provider, parent and dependency links) again for every stack policy. Within one
call the same message always gives the same read-only view (no policy writes to what it is given), so
this module makes the servicer remember each step's result for the length of the call, keyed by the
identity of the message (the memo keeps it alive, so the key stays unique), and builds the stack's
resources once for all stack policies (each policy still gets its own list). Every policy still sees
what it saw before, under `roadbike plan` and under `pulumi preview` alike (both run
`policies/__main__.py`); only the repeated work is gone.

`install()` does nothing unless the SDK is the version this was written against and still has the names
it wraps and uses: any other version runs as it ships.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pulumi_policy.policy as sdk
from google.protobuf import json_format

SDK_VERSION = "1.21.0"
_MEMO: contextvars.ContextVar[dict[Any, Any] | None] = contextvars.ContextVar(
    "roadbike_props_memo", default=None
)
_WRAPPED = ("json_format", "deserialize_properties", "unknown_checking_proxy")
# What `_analyze_stack` uses of the SDK module besides the wrapped names.
_STACK_NAMES = (
    *("PolicyResource", "StackValidationArgs", "StackValidationPolicy", "EnforcementLevel", "proto"),
    *("asyncio", "isawaitable", "UnknownValueError", "_NotApplicableError"),
)
_METHODS = ("Analyze", "AnalyzeStack", "_get_resource_options", "_get_provider_resource")


def _remembered(kind: str, value: Any, decode: Callable[[Any], Any]) -> Any:
    """`decode(value)`, once per call for each `value` object: keyed by its identity, which stays unique
    because the memo keeps `value` alive until the call ends."""
    memo = _MEMO.get()
    if memo is None:
        return decode(value)
    key = (kind, id(value))
    found = memo.get(key)
    if found is None or found[0] is not value:
        found = memo[key] = (value, decode(value))
    return found[1]


def _message_to_dict(message: Any, *args: Any, **kwargs: Any) -> Any:
    if args or kwargs:
        return json_format.MessageToDict(message, *args, **kwargs)
    return _remembered("dict", message, json_format.MessageToDict)


def _by_identity(kind: str, decode: Callable[..., Any]) -> Callable[..., Any]:
    """`decode(value)` remembered for the call by the identity of `value`."""

    @functools.wraps(decode)
    def remembered(value: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:
            return decode(value, *args, **kwargs)
        return _remembered(kind, value, decode)

    return remembered


def _by_request(kind: str, method: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """The servicer's `method(self, request)` remembered for the call by the identity of `request`."""

    @functools.wraps(method)
    def remembered(self: Any, request: Any) -> Any:
        return _remembered(kind, request, lambda value: method(self, value))

    return remembered


def _stack_resources(servicer: Any, request: Any) -> list[Any]:
    """The stack's resources as the SDK's `AnalyzeStack` builds them for each stack policy (parent,
    dependencies and property dependencies linked to the resource objects), built here once per call."""
    built = []
    for r in request.resources:
        props = sdk.unknown_checking_proxy(
            sdk.deserialize_properties(sdk.json_format.MessageToDict(r.properties))
        )
        resource = sdk.PolicyResource(
            r.type,
            props,
            r.urn,
            r.name,
            servicer._get_resource_options(r),
            servicer._get_provider_resource(r),
            None,
            [],
            {},
        )
        property_dependencies = {k: list(v.urns) for k, v in r.propertyDependencies.items()}
        built.append((resource, r.parent, list(r.dependencies), property_dependencies))
    by_urn = {resource.urn: resource for resource, *_ in built}
    for resource, parent, dependencies, property_dependencies in built:
        if parent is not None and parent in by_urn:
            resource.parent = by_urn[parent]
        resource.dependencies.extend(by_urn[d] for d in dependencies if d in by_urn)
        for k, urns in property_dependencies.items():
            resource.property_dependencies[k] = [by_urn[d] for d in urns if d in by_urn]
    return [resource for resource, *_ in built]


def _analyze_stack(self: Any, request: Any, _context: Any) -> Any:
    """pulumi-policy 1.21.0's `AnalyzeStack`, but that the resources are built once for all the stack
    policies instead of once per policy. Each policy gets its own list of them; the resource objects are
    shared, which no policy can tell: none of them writes to a resource (as to its properties)."""
    self._configure_runtime_settings()
    response = sdk.proto.AnalyzeResponse()
    pack_name = self._PolicyAnalyzerServicer__policy_pack_name
    pack_version = self._PolicyAnalyzerServicer__policy_pack_version
    resources = None
    for policy in self._PolicyAnalyzerServicer__policies:
        enforcement_level = self._get_enforcement_level(policy)
        if enforcement_level == sdk.EnforcementLevel.DISABLED or not isinstance(
            policy, sdk.StackValidationPolicy
        ):
            continue
        if enforcement_level == sdk.EnforcementLevel.REMEDIATE:
            enforcement_level = sdk.EnforcementLevel.MANDATORY
        report_violation = self._create_report_violation(
            response, policy.name, policy.description, enforcement_level, policy.severity
        )
        if resources is None:
            resources = _stack_resources(self, request)
        config = self._get_policy_config(policy.name)
        args = sdk.StackValidationArgs(list(resources), config, self._PolicyAnalyzerServicer__stack_tags)
        try:
            result = policy.validate(args, report_violation)
            if sdk.isawaitable(result):
                loop = sdk.asyncio.new_event_loop()
                task: Any = sdk.asyncio.Task(result, loop=loop)  # type: ignore[arg-type]
                loop.run_until_complete(task)
                loop.close()
        except sdk.UnknownValueError as e:
            response.diagnostics.append(
                sdk.proto.AnalyzeDiagnostic(
                    policyName=policy.name,
                    policyPackName=pack_name,
                    policyPackVersion=pack_version,
                    message=(
                        f"can't run policy '{policy.name}' from policy pack "
                        f"'{pack_name}@v{pack_version}' during preview: {e.message}"
                    ),
                    urn="",
                    description=policy.description,
                    enforcementLevel=self._map_enforcement_level(sdk.EnforcementLevel.ADVISORY),
                )
            )
        except sdk._NotApplicableError as e:
            response.not_applicable.append(
                sdk.proto.PolicyNotApplicable(policy_name=policy.name, reason=e.reason or "")
            )
    return response


def _per_call(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: Any, request: Any, context: Any) -> Any:
        token = _MEMO.set({})
        try:
            return method(self, request, context)
        finally:
            _MEMO.reset(token)

    return call


def installable() -> bool:
    servicer = getattr(sdk, "_PolicyAnalyzerServicer", None)
    return (
        _sdk_version() == SDK_VERSION
        and servicer is not None
        and all(hasattr(servicer, name) for name in _METHODS)
        and all(hasattr(sdk, name) for name in (*_WRAPPED, *_STACK_NAMES))
    )


def _sdk_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pulumi_policy")
    except PackageNotFoundError:
        return None


_ORIGINALS: dict[str, Any] = {}


def install() -> bool:
    """Make the pack's servicer decode each resource's properties once per call; True if installed."""
    if _ORIGINALS:
        return True
    if not installable():
        return False
    servicer = sdk._PolicyAnalyzerServicer
    _ORIGINALS.update({name: getattr(sdk, name) for name in _WRAPPED})
    _ORIGINALS.update({name: getattr(servicer, name) for name in _METHODS})
    sdk.json_format = SimpleNamespace(MessageToDict=_message_to_dict)  # type: ignore[assignment]
    sdk.deserialize_properties = _by_identity("props", sdk.deserialize_properties)
    sdk.unknown_checking_proxy = _by_identity("proxy", sdk.unknown_checking_proxy)
    servicer._get_resource_options = _by_request("options", servicer._get_resource_options)  # type: ignore[method-assign, assignment]
    servicer._get_provider_resource = _by_request("provider", servicer._get_provider_resource)  # type: ignore[method-assign, assignment]
    servicer.Analyze = _per_call(servicer.Analyze)  # type: ignore[method-assign, assignment]
    servicer.AnalyzeStack = _per_call(_analyze_stack)  # type: ignore[method-assign, assignment]
    return True


def uninstall() -> None:
    """The SDK as it ships again (for tests that compare the two)."""
    servicer = sdk._PolicyAnalyzerServicer
    for name in _WRAPPED:
        if name in _ORIGINALS:
            setattr(sdk, name, _ORIGINALS[name])
    for name in _METHODS:
        if name in _ORIGINALS:
            setattr(servicer, name, _ORIGINALS[name])
    _ORIGINALS.clear()
