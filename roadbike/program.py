"""Run the Pulumi program in-process under Pulumi's mock monitor and record what it registers.

The monitor keeps each resource as the engine would receive it: type, name, URN, parent, dependencies and
the inputs in engine form (camelCase, secrets wrapped in the secret signature). Those are exactly the
properties the policy pack is later given over the Analyzer protocol.
"""

from __future__ import annotations

import contextvars
import hashlib
import pathlib
import runpy
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import pulumi
import pulumi.runtime
from google.protobuf import json_format
from pulumi.runtime import mocks, rpc
from pulumi.runtime import resource as sdk_resource
from pulumi.runtime.proto import resource_pb2, source_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
RESOURCE_REF_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
STACK_TYPE = "pulumi:pulumi:Stack"


@dataclass
class RecordedResource:
    urn: str
    type: str
    name: str
    custom: bool
    parent: str
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    inputs: dict[str, Any]  # engine form: camelCase, secrets wrapped
    provider: str = ""
    version: str = ""  # the provider package's version the SDK asked for
    outputs: dict[str, Any] | None = None  # a component's register_outputs (engine form), once called
    protect: bool = False


@dataclass
class ProgramRun:
    project: str
    stack: str
    resources: list[RecordedResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)  # engine form, secrets wrapped
    stack_urn: str = ""


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG


def _digest(*parts: str) -> str:
    return "sha256:" + hashlib.sha256("/".join(parts).encode()).hexdigest()


# The computed outputs of the types whose outputs the program reads: unknown in a first preview, since
# the resources do not exist yet, exactly as `pulumi preview` has them (`output<string>`).
FIRST_PREVIEW_UNKNOWNS: dict[str, tuple[str, ...]] = {
    "github:index/repository:Repository": ("fullName", "nodeId", "repoId", "htmlUrl"),
    "random:index/randomPassword:RandomPassword": ("result", "bcryptHash"),
    "random:index/randomString:RandomString": ("result",),
    "random:index/randomId:RandomId": ("hex", "b64Std"),
    "docker-build:index:Image": ("digest", "ref"),
    "pulumi-python:dynamic/roadbike:CosignKeyPair": ("publicKey", "privateKey", "password"),
}


class PlanMocks(mocks.Mocks):
    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        state = dict(args.inputs)
        state.update({name: rpc.UNKNOWN for name in FIRST_PREVIEW_UNKNOWNS.get(args.typ, ())})
        return f"{args.name}-id", state

    def call(self, args: mocks.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        return {}, None


class RecordingMonitor(mocks.MockMonitor):
    """The mock monitor, keeping every registration request as the engine would see it."""

    def __init__(
        self, mocks_: mocks.Mocks, on_resource: Callable[[RecordedResource], None] | None = None
    ) -> None:
        super().__init__(mocks_)
        self.recorded: list[RecordedResource] = []
        self.by_urn: dict[str, RecordedResource] = {}
        self.ids: dict[str, str] = {}
        self.on_resource = on_resource

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """URNs as the engine makes them: the parent's full type chain, the root stack left out."""
        if parent:
            parent_type = parent.split("::")[2]
            if parent_type != STACK_TYPE:
                type_ = f"{parent_type}${type_}"
        return f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}::{type_}::{name}"

    def RegisterResource(self, request: Any) -> Any:
        response = self._register(request)
        if request.type == STACK_TYPE:
            self.ids[response.urn] = response.urn
            return response
        self.ids[response.urn] = response.id or response.urn
        props = json_format.MessageToDict(request.object, preserving_proto_field_name=True)
        recorded = RecordedResource(
            urn=response.urn,
            type=request.type,
            name=request.name,
            custom=bool(request.custom),
            parent=request.parent,
            dependencies=sorted(set(request.dependencies)),
            property_dependencies={k: sorted(v.urns) for k, v in request.propertyDependencies.items()},
            # Referenced resources are registered before their dependents, so their ids are known here.
            inputs=_resolve_refs(props, self.ids),
            provider=request.provider,
            version=request.version,
            protect=bool(request.protect),
        )
        self.by_urn[recorded.urn] = recorded
        self.recorded.append(recorded)
        if self.on_resource is not None:
            self.on_resource(recorded)
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:
        """A component's outputs, kept as the engine keeps them (its outputs from then on)."""
        recorded = self.by_urn.get(request.urn)
        if recorded is not None:
            outputs = json_format.MessageToDict(request.outputs, preserving_proto_field_name=True)
            recorded.outputs = _resolve_refs(outputs, self.ids)
        return super().RegisterResourceOutputs(request)

    def _register(self, request: Any) -> Any:
        """The mock monitor's registration; for a resource whose outputs are its inputs (every type
        without computed outputs in FIRST_PREVIEW_UNKNOWNS) the inputs are handed back as they came, sparing the
        deserialize/serialize round trip that dominates a large fleet's run."""
        if request.type == STACK_TYPE or request.type in FIRST_PREVIEW_UNKNOWNS:
            return super().RegisterResource(request)
        urn = self.make_urn(request.parent, request.type, request.name)
        resource_id = f"{request.name}-id" if request.custom else ""
        self.resources[urn] = mocks.MockMonitor.ResourceRegistration(urn, resource_id, {})
        return resource_pb2.RegisterResourceResponse(urn=urn, id=resource_id, object=request.object)


def _resolve_refs(value: Any, ids: dict[str, str]) -> Any:
    """Resource references become the referenced id, as the engine's analyzers see them."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == RESOURCE_REF_SIG:
            return value.get("id") or ids.get(value.get("urn", ""), value.get("urn", ""))
        return {k: _resolve_refs(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_refs(v, ids) for v in value]
    return value


def _stack_trace() -> source_pb2.StackTrace:
    """What `pulumi.runtime.resource._get_stack_trace` returns, the same frames and positions, without
    its cost: it extracts the whole stack with every frame's source line read through linecache (a stat
    per frame) and makes each file's URI anew, for a message whose source lines it never sends. A large
    fleet registers thousands of resources from deep component stacks; this walks the frames itself."""
    frames = []
    # From the SDK's caller, as extract_stack() inside _get_stack_trace starts.
    frame: FrameType | None = sys._getframe(1)
    inits = 0
    while frame is not None:
        if inits < 3:
            inits += frame.f_code.co_name == "__init__"
        else:  # the frames below the third __init__ (Resource, Custom/Component, the concrete class)
            frames.append(
                source_pb2.StackFrame(pc=_source_position(frame.f_code.co_filename, frame.f_lineno))
            )
        frame = frame.f_back
    if inits < 3 or not frames:
        return source_pb2.StackTrace()
    return source_pb2.StackTrace(frames=frames)


_URIS: dict[str, str | None] = {}


def _source_position(filename: str, line: int | None) -> source_pb2.SourcePosition | None:
    if filename == "" or line is None:
        return None
    if filename not in _URIS:
        try:
            _URIS[filename] = pathlib.Path(filename).as_uri()
        except ValueError:  # a relative path has no file URI: the SDK leaves the position out
            _URIS[filename] = None
    uri = _URIS[filename]
    return None if uri is None else source_pb2.SourcePosition(uri=uri, line=line)


@contextmanager
def _fast_stack_traces() -> Iterator[None]:
    stock = sdk_resource._get_stack_trace
    sdk_resource._get_stack_trace = _stack_trace
    try:
        yield
    finally:
        sdk_resource._get_stack_trace = stock


async def _serialize_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    struct = await rpc.serialize_properties(outputs, {}, keep_output_values=False)
    return json_format.MessageToDict(struct, preserving_proto_field_name=True)


def run_program(
    program_dir: Path,
    project: str,
    stack: str,
    config: dict[str, str],
    secret_keys: list[str],
    on_resource: Callable[[RecordedResource], None] | None = None,
) -> ProgramRun:
    """Run `<program_dir>/__main__.py` under the recording monitor.

    `on_resource` sees each resource as it registers (from the SDK's worker threads), as the engine
    hands each one to its analyzers. Pulumi keeps its runtime settings in context variables: running in a
    copied context leaves the caller's settings (and any other run's) untouched.
    """
    return contextvars.copy_context().run(
        _run_program, program_dir, project, stack, config, secret_keys, on_resource
    )


def _run_main(path: str) -> None:
    runpy.run_path(path, run_name="__main__")


def _run_program(
    program_dir: Path,
    project: str,
    stack: str,
    config: dict[str, str],
    secret_keys: list[str],
    on_resource: Callable[[RecordedResource], None] | None,
) -> ProgramRun:
    settings = pulumi.runtime.settings
    saved_path = list(sys.path)
    plan_mocks = PlanMocks()
    monitor = RecordingMonitor(plan_mocks, on_resource)
    try:
        settings.ROOT.set(None)
        mocks.set_mocks(plan_mocks, project=project, stack=stack, preview=True, monitor=monitor)
        pulumi.runtime.set_all_config(config, secret_keys)
        settings.SETTINGS.rpc_manager.clear()
        settings.SETTINGS.outputs.clear()
        sys.path.insert(0, str(program_dir))
        main = str(program_dir / "__main__.py")
        with _fast_stack_traces():
            _sync_await(run_pulumi_func(lambda: _run_main(main)))
        root = settings.get_root_resource()
        outputs = _sync_await(_serialize_outputs(dict(getattr(root, "outputs", {}) or {})))
    finally:
        sys.path[:] = saved_path
    resources = list(monitor.recorded)
    stack_urn = monitor.make_urn("", STACK_TYPE, f"{project}-{stack}")
    return ProgramRun(project=project, stack=stack, resources=resources, outputs=outputs, stack_urn=stack_urn)
