"""Each resource's properties decoded once per call into the pack, not once per policy.

pulumi-policy 1.21's `Analyze` decodes the request's properties (protobuf Struct -> dict -> unknown-checking
proxy) again for every resource policy, and `AnalyzeStack` again for every stack policy and resource: with
this pack's 24 resource policies, decoding is nine tenths of the pack's time. Within one call the same
Struct always decodes to the same read-only view (no policy writes to `args.props`), so this module makes
the servicer's decoding steps remember their result for the length of the call, keyed by the Struct's
bytes. Every policy still sees exactly what it saw before, under `roadbike plan` and under `pulumi
preview` alike (both run `policies/__main__.py`); only the repeated work is gone.

`install()` does nothing unless the SDK is the version this was written against and still decodes through
the three names it wraps: any other version runs as it ships.
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


def _message_to_dict(message: Any, *args: Any, **kwargs: Any) -> Any:
    memo = _MEMO.get()
    if memo is None or args or kwargs or not hasattr(message, "SerializeToString"):
        return json_format.MessageToDict(message, *args, **kwargs)
    key = ("dict", message.SerializeToString(deterministic=True))
    found = memo.get(key)
    if found is None:
        found = memo[key] = json_format.MessageToDict(message)
    return found


def _by_identity(kind: str, decode: Callable[..., Any]) -> Callable[..., Any]:
    """`decode(value)` remembered by the identity of `value`, which the memo keeps alive for the call."""

    @functools.wraps(decode)
    def remembered(value: Any, *args: Any, **kwargs: Any) -> Any:
        memo = _MEMO.get()
        if memo is None or args or kwargs:
            return decode(value, *args, **kwargs)
        key = (kind, id(value))
        found = memo.get(key)
        if found is None or found[0] is not value:
            found = memo[key] = (value, decode(value))
        return found[1]

    return remembered


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
        and all(hasattr(servicer, name) for name in ("Analyze", "AnalyzeStack"))
        and all(
            hasattr(sdk, name) for name in ("json_format", "deserialize_properties", "unknown_checking_proxy")
        )
    )


def _sdk_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pulumi_policy")
    except PackageNotFoundError:
        return None


_ORIGINALS: dict[str, Any] = {}
_WRAPPED = ("json_format", "deserialize_properties", "unknown_checking_proxy")


def install() -> bool:
    """Make the pack's servicer decode each resource's properties once per call; True if installed."""
    if _ORIGINALS:
        return True
    if not installable():
        return False
    servicer = sdk._PolicyAnalyzerServicer
    _ORIGINALS.update({name: getattr(sdk, name) for name in _WRAPPED})
    _ORIGINALS.update(Analyze=servicer.Analyze, AnalyzeStack=servicer.AnalyzeStack)
    sdk.json_format = SimpleNamespace(MessageToDict=_message_to_dict)  # type: ignore[assignment]
    sdk.deserialize_properties = _by_identity("props", sdk.deserialize_properties)
    sdk.unknown_checking_proxy = _by_identity("proxy", sdk.unknown_checking_proxy)
    servicer.Analyze = _per_call(servicer.Analyze)  # type: ignore[method-assign]
    servicer.AnalyzeStack = _per_call(servicer.AnalyzeStack)  # type: ignore[method-assign]
    return True


def uninstall() -> None:
    """The SDK as it ships again (for tests that compare the two)."""
    servicer = sdk._PolicyAnalyzerServicer
    for name in _WRAPPED:
        if name in _ORIGINALS:
            setattr(sdk, name, _ORIGINALS[name])
    for name in ("Analyze", "AnalyzeStack"):
        if name in _ORIGINALS:
            setattr(servicer, name, _ORIGINALS[name])
    _ORIGINALS.clear()
