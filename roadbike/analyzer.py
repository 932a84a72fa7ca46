"""Drive a CrossGuard policy pack over the Analyzer gRPC protocol, the way `pulumi preview` does.

The pack is started as its own process exactly as the engine starts a Python pack
(`python -u -m pulumi.policy <engine> <pack dir>`, cwd = the pack), its port is read from the first
line of its stdout, and the process is always stopped, on errors and Ctrl-C too.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import jsonschema
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from roadbike import interrupt
from roadbike.program import ProgramRun, RecordedResource
from roadbike.providers import checked_inputs, engine_only_resources, preview_outputs

ENFORCEMENT_NAMES = {
    analyzer_pb2.ADVISORY: "advisory",
    analyzer_pb2.MANDATORY: "mandatory",
    analyzer_pb2.DISABLED: "disabled",
    analyzer_pb2.REMEDIATE: "remediate",
}
ENFORCEMENT_VALUES = {v: k for k, v in ENFORCEMENT_NAMES.items()}
SEVERITY_NAMES = {0: "", 1: "low", 2: "medium", 3: "high", 4: "critical"}
START_TIMEOUT_SECONDS = 60.0
# Analyze calls in flight at once: keeps the pack's worker threads busy without queueing the whole stack.
PIPELINE_DEPTH = 32


class PolicyPackError(Exception):
    """The pack could not be started, configured or run."""


@dataclass(frozen=True)
class PolicyInfo:
    name: str
    description: str
    enforcement_level: str
    severity: str


@dataclass(frozen=True)
class Violation:
    policy: str
    description: str
    message: str
    enforcement_level: str
    urn: str
    severity: str

    @property
    def detail(self) -> str:
        """The violation message without the description the pack prepends to it."""
        prefix = self.description + "\n"
        return self.message.removeprefix(prefix) if self.message.startswith(prefix) else self.message


@dataclass
class PolicyResult:
    pack_name: str
    pack_version: str
    policies: list[PolicyInfo]
    violations: list[Violation] = field(default_factory=list)
    not_applicable: dict[str, list[str]] = field(default_factory=dict)  # policy -> reasons
    analyzed_resources: int = 0


def read_pack_version(pack_dir: Path) -> str:
    import yaml

    document = yaml.safe_load((pack_dir / "PulumiPolicy.yaml").read_text(encoding="utf-8")) or {}
    return str(document.get("version", "0.0.1"))


def load_policy_config(path: Path | None) -> dict[str, Any]:
    """`--policy-pack-config` JSON: `{"policy": "advisory"}` or `{"policy": {"enforcementLevel": ..., ...}}`."""
    if path is None:
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: policy pack config file not found") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from None
    if not isinstance(document, dict):
        raise ValueError(f"{path}: must be a JSON object keyed by policy name")
    for name, value in document.items():
        level = value if isinstance(value, str) else (value or {}).get("enforcementLevel", "mandatory")
        if not isinstance(value, (str, dict)) or level not in ENFORCEMENT_VALUES:
            raise ValueError(
                f"{path}: {name}: expected an enforcement level ({', '.join(ENFORCEMENT_VALUES)}) "
                "or an object with enforcementLevel and properties"
            )
    return document


def _settings(value: str | dict[str, Any]) -> dict[str, Any]:
    return {"enforcementLevel": value} if isinstance(value, str) else dict(value)


def expand_all(policy_config: dict[str, Any], known: set[str]) -> dict[str, Any]:
    """`{"all": LEVEL}` sets every policy's enforcement level, as the Pulumi CLI applies it; a policy's
    own entry overrides it."""
    if "all" not in policy_config:
        return policy_config
    level = _settings(policy_config["all"]).get("enforcementLevel", "mandatory")
    expanded: dict[str, Any] = {name: {"enforcementLevel": level} for name in sorted(known)}
    for name, value in policy_config.items():
        if name != "all":
            expanded[name] = {**expanded.get(name, {}), **_settings(value)}
    return expanded


def _configure_request(policy_config: dict[str, Any], known: set[str], source: str) -> Any:
    request = analyzer_pb2.ConfigureAnalyzerRequest()
    for name in policy_config:
        if name not in known and name != "all":
            raise ValueError(f"{source}: {name}: no such policy in the pack")
    for name, value in expand_all(policy_config, known).items():
        settings = _settings(value)
        level = settings.pop("enforcementLevel", "mandatory")
        properties = struct_pb2.Struct()
        properties.update(settings)
        request.policyConfig[name].CopyFrom(
            analyzer_pb2.PolicyConfig(enforcementLevel=ENFORCEMENT_VALUES[level], properties=properties)
        )
    return request


def _check_config_schemas(info: Any, policy_config: dict[str, Any], source: str) -> None:
    """Refuse policy settings that break a policy's config schema, as the Pulumi CLI does."""
    schemas = {p.name: p.configSchema for p in info.policies}
    for name, value in policy_config.items():
        if not isinstance(value, dict) or name not in schemas:
            continue
        settings = {k: v for k, v in value.items() if k != "enforcementLevel"}
        schema = {
            "type": "object",
            "properties": json_format.MessageToDict(schemas[name].properties),
            "required": list(schemas[name].required),
        }
        error = jsonschema.exceptions.best_match(jsonschema.Draft7Validator(schema).iter_errors(settings))
        if error is not None:
            where = ".".join(str(part) for part in error.absolute_path)
            expected = error.schema.get("description") if error.validator == "pattern" else None
            message = f"{error.instance!r} is not valid: {expected}" if expected else error.message
            raise ValueError(f"{source}: {name}{'.' + where if where else ''}: {message}")


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


def _resource_options(resource: RecordedResource) -> Any:
    return analyzer_pb2.AnalyzerResourceOptions(parent=resource.parent)


class PolicyPackProcess:
    """A running pack: `with PolicyPackProcess(dir) as pack: pack.stub.Analyze(...)`."""

    def __init__(self, pack_dir: Path, project: str, stack: str, python: str = sys.executable) -> None:
        self.pack_dir = pack_dir
        self.python = python  # the engine uses the pack's own virtualenv (policies/venv)
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "PULUMI_PROJECT": project,
            "PULUMI_STACK": stack,
            "PULUMI_DRY_RUN": "true",
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.channel: grpc.Channel | None = None
        self.stub: Any = None
        self._stderr: list[str] = []
        self._interrupt_key: int | None = None

    def start(self) -> None:
        command = [self.python, "-u", "-m", "pulumi.policy", "127.0.0.1:0", str(self.pack_dir)]
        # Started and registered for the interrupt handler in one step: a Ctrl-C in between would
        # leave a pack that nobody stops (it runs in its own session).
        with interrupt.critical():
            self.process = subprocess.Popen(
                command,
                cwd=self.pack_dir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # Ctrl-C reaches us, and we stop the pack ourselves
            )
            self._interrupt_key = interrupt.on_interrupt(self.kill)

    def kill(self) -> None:
        """SIGKILL the pack's process group at once (the interrupt handler's stop: no waiting)."""
        if self.process is not None and self.process.poll() is None:
            with suppress(OSError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def exit_description(self) -> str | None:
        """How the process ended (`killed by SIGKILL`, `exited with 1`), None while it runs."""
        code = self.process.poll() if self.process is not None else None
        if code is None:
            return None
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"killed by {name}"
        return f"exited with {code}"

    def connect(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        port = self._read_port()
        self.channel = grpc.insecure_channel(
            f"127.0.0.1:{port}",
            options=[
                ("grpc.max_receive_message_length", 64 << 20),
                ("grpc.max_send_message_length", 64 << 20),
            ],
        )
        grpc.channel_ready_future(self.channel).result(timeout=START_TIMEOUT_SECONDS)
        self.stub = analyzer_pb2_grpc.AnalyzerStub(self.channel)

    def _read_port(self) -> int:
        assert (
            self.process is not None and self.process.stdout is not None and self.process.stderr is not None
        )
        lines: queue.Queue[bytes] = queue.Queue()
        stdout, stderr = self.process.stdout, self.process.stderr
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        threading.Thread(
            target=lambda: self._stderr.extend(b.decode(errors="replace") for b in stderr), daemon=True
        ).start()
        try:
            first = lines.get(timeout=START_TIMEOUT_SECONDS)
        except queue.Empty:
            raise PolicyPackError(f"policy pack {self.pack_dir} did not print its port within 60 s") from None
        text = first.decode(errors="replace").strip()
        if not text.isdigit():
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
            ended = self.exit_description()
            how = f" ({ended})" if ended else ""
            raise PolicyPackError(
                f"policy pack {self.pack_dir} failed to start{how}; its last lines:\n{self.stderr_tail(10)}"
            )
        return int(text)

    def stderr_tail(self, lines: int = 30) -> str:
        return "\n".join("".join(self._stderr).strip().splitlines()[-lines:])

    def stop(self) -> None:
        stop_all([self])


def stop_all(packs: Sequence[PolicyPackProcess], grace: float = 3.0) -> None:
    """Stop every pack: SIGINT to all (the pack's server loop ends on KeyboardInterrupt), a shared
    `grace` to end, then SIGKILL to those left. One pack whose stop fails never keeps the others running."""
    for pack in packs:
        with suppress(Exception):
            if pack.channel is not None:
                pack.channel.close()
    running = [p for p in packs if p.process is not None and p.process.poll() is None]
    for pack in running:
        assert pack.process is not None
        with suppress(OSError):
            os.killpg(pack.process.pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(p.process.poll() is None for p in running if p.process):
        time.sleep(0.02)
    for pack in running:
        assert pack.process is not None
        if pack.process.poll() is None:
            with suppress(OSError):
                os.killpg(pack.process.pid, signal.SIGKILL)
    for pack in running:
        assert pack.process is not None
        with suppress(Exception):
            pack.process.wait(timeout=2)
    for pack in packs:
        if pack._interrupt_key is not None:
            interrupt.forget(pack._interrupt_key)


@contextmanager
def running_packs(
    pack_dir: Path, project: str, stack: str, count: int = 1
) -> Iterator[list[PolicyPackProcess]]:
    """`count` processes of the same pack, each started as the engine starts one; all stopped on exit."""
    packs = [PolicyPackProcess(pack_dir, project, stack) for _ in range(count)]
    try:
        for pack in packs:
            pack.start()
        yield packs
    finally:
        stop_all(packs)


@contextmanager
def running_pack(pack_dir: Path, project: str, stack: str) -> Iterator[PolicyPackProcess]:
    with running_packs(pack_dir, project, stack) as packs:
        yield packs[0]


def pack_processes() -> int:
    """How many pack processes share a plan's resource analysis: one per core the program leaves (the
    program keeps one busy), at least one, at most four."""
    return max(1, min(4, (os.cpu_count() or 1) - 1))


class AnalysisSession:
    """One analysis as the engine runs it: configure the pack, `Analyze` each resource as it registers,
    then `AnalyzeStack` once.

    `submit` may be called from any thread while the program runs. Each pack process has a worker thread
    that connects to and configures it (overlapping its start-up with the program) and keeps a bounded
    number of `Analyze` calls in flight, so the packs work on the other cores while the program
    registers. Resource policies see one resource at a time, so any process of the pack gives the same
    answer; `AnalyzeStack` goes to one process as soon as the program has ended, while the others finish
    the resources still queued.
    """

    def __init__(
        self,
        packs: Sequence[PolicyPackProcess],
        project: str,
        stack: str,
        policy_config: dict[str, Any],
        policy_config_source: str = "--policy-pack-config",
        config: dict[str, str] | None = None,
        secret_keys: list[str] | None = None,
    ) -> None:
        self.packs = list(packs)
        self.config, self.secret_keys = config or {}, secret_keys or []  # the stack's, for default providers
        self.project, self.stack = project, stack
        self.policy_config, self.policy_config_source = policy_config, policy_config_source
        self._queue: queue.Queue[RecordedResource | None] = queue.Queue()
        self._answers: list[tuple[Any, str]] = []
        self._errors: list[BaseException] = []
        self._info: Any = None
        self._policies: list[PolicyInfo] = []
        self._configured = [threading.Event() for _ in self.packs]
        self._workers = [
            threading.Thread(target=self._work, args=(index,), name=f"policy-analysis-{index}", daemon=True)
            for index in range(len(self.packs))
        ]
        for worker in self._workers:
            worker.start()

    def submit(self, resource: RecordedResource) -> None:
        self._queue.put(resource)

    def _engine_only(self, run: ProgramRun) -> list[RecordedResource]:
        """The Stack and the default providers, analysed as the engine analyses them (after the program,
        once it has shown which providers it uses)."""
        return engine_only_resources(run.resources, run.stack_urn, self.config, self.secret_keys)

    def finish(self, run: ProgramRun, meanwhile: Callable[[], None] | None = None) -> PolicyResult:
        """Run `AnalyzeStack`, wait for every `Analyze` answer, and gather the violations.

        `meanwhile` runs here while the pack processes finish the analysis: work of this process that
        needs no policy result overlaps theirs instead of following it."""
        engine_only = self._engine_only(run)
        for resource in engine_only:
            self._queue.put(resource)
        for _ in self._workers:
            self._queue.put(None)
        stack_pack = len(self.packs) - 1
        self._configured[stack_pack].wait()
        stack_answer = None
        stack_call = None
        if not self._errors:
            stack_request = analyzer_pb2.AnalyzeStackRequest(
                resources=[_stack_resource(r) for r in engine_only[1:]]  # the Stack: its outputs, below
                + [_stack_resource(r) for r in run.resources]
                + [_root_stack_resource(run)]
            )
            stack_call = self.packs[stack_pack].stub.AnalyzeStack.future(stack_request)
        if meanwhile is not None:
            meanwhile()
        if stack_call is not None:
            try:
                stack_answer = stack_call.result()
            except grpc.RpcError as error:
                self._errors.append(_pack_error(self.packs[stack_pack], error))
        for worker in self._workers:
            worker.join()
        if self._errors:
            raise self._errors[0]
        result = PolicyResult(
            pack_name=self._info.name,
            pack_version=read_pack_version(self.packs[0].pack_dir),
            policies=self._policies,
            analyzed_resources=len(self._answers),
        )
        for response, subject in [*self._answers, (stack_answer, run.stack_urn)]:
            _collect(result, response, subject)
        result.violations.sort(key=lambda v: (v.policy, v.urn, v.message))
        return result

    def _work(self, index: int) -> None:
        pack = self.packs[index]
        stopped = False  # this worker's end-of-stream marker taken from the queue
        try:
            self._configure(pack)
            self._configured[index].set()
            in_flight: collections.deque[tuple[Any, str]] = collections.deque()
            while (resource := self._queue.get()) is not None:
                request = _analyze_request(resource)
                in_flight.append((pack.stub.Analyze.future(request), resource.urn))
                if len(in_flight) >= PIPELINE_DEPTH:
                    self._take(in_flight.popleft())
            stopped = True
            while in_flight:
                self._take(in_flight.popleft())
        except BaseException as error:  # handed to the caller in finish()
            self._errors.append(_pack_error(pack, error))
            self._configured[index].set()
            # Keep taking resources (moot now) until this worker's own marker, so submitters never block
            # and every other worker still finds its marker.
            while not stopped:
                stopped = self._queue.get() is None

    def _take(self, pending: tuple[Any, str]) -> None:
        future, urn = pending
        # A resource policy's diagnostic carries no URN: the engine attributes it to the analyzed resource.
        self._answers.append((future.result(), urn))

    def _configure(self, pack: PolicyPackProcess) -> None:
        """Handshake, GetAnalyzerInfo, Configure (policy pack config), ConfigureStack."""
        if pack.stub is None:
            pack.connect()
        stub = pack.stub
        try:
            stub.Handshake(
                analyzer_pb2.AnalyzerHandshakeRequest(
                    engine_address="",
                    root_directory=str(pack.pack_dir.parent),
                    program_directory=str(pack.pack_dir),
                )
            )
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise
        info = stub.GetAnalyzerInfo(empty_pb2.Empty())
        levels = {p.name: ENFORCEMENT_NAMES.get(p.enforcementLevel, "advisory") for p in info.policies}
        for name, value in self.policy_config.items():
            if name in levels:
                levels[name] = value if isinstance(value, str) else value.get("enforcementLevel", "mandatory")
        _check_config_schemas(info, self.policy_config, self.policy_config_source)
        stub.Configure(_configure_request(self.policy_config, set(levels), self.policy_config_source))
        stub.ConfigureStack(
            analyzer_pb2.AnalyzerStackConfigureRequest(
                stack=self.stack, project=self.project, organization="organization", dry_run=True
            )
        )
        self._info = info
        self._policies = [
            PolicyInfo(p.name, p.description, levels[p.name], SEVERITY_NAMES.get(p.severity, ""))
            for p in info.policies
        ]


def _pack_error(pack: PolicyPackProcess, error: BaseException) -> BaseException:
    """A failed call into the pack (a policy that raised, a pack that died) as a PolicyPackError."""
    if not isinstance(error, grpc.RpcError):
        return error
    details = error.details() if hasattr(error, "details") else str(error)
    if pack.process is not None:
        with suppress(subprocess.TimeoutExpired):
            pack.process.wait(timeout=0.5)  # a pack that died: say how
    ended = pack.exit_description()
    tail = pack.stderr_tail(10)
    how = f" (the pack process {ended})" if ended else ""
    last = f"\nthe pack's last lines:\n{tail}" if tail else ""
    return PolicyPackError(f"the policy pack failed{how}: {details}{last}")


def _collect(result: PolicyResult, response: Any, subject: str) -> None:
    for diagnostic in response.diagnostics:
        result.violations.append(
            Violation(
                policy=diagnostic.policyName,
                description=diagnostic.description,
                message=diagnostic.message,
                enforcement_level=ENFORCEMENT_NAMES.get(diagnostic.enforcementLevel, "advisory"),
                urn=diagnostic.urn or subject,
                severity=SEVERITY_NAMES.get(diagnostic.severity, ""),
            )
        )
    for item in response.not_applicable:
        result.not_applicable.setdefault(item.policy_name, []).append(item.reason)


def analyze(
    pack: PolicyPackProcess,
    run: ProgramRun,
    policy_config: dict[str, Any],
    policy_config_source: str = "--policy-pack-config",
) -> PolicyResult:
    """Analyze an already recorded run: every resource, then the stack."""
    session = AnalysisSession([pack], run.project, run.stack, policy_config, policy_config_source)
    for resource in run.resources:
        session.submit(resource)
    return session.finish(run)


def _analyze_request(resource: RecordedResource) -> Any:
    return analyzer_pb2.AnalyzeRequest(
        type=resource.type,
        properties=_struct(checked_inputs(resource)),
        urn=resource.urn,
        name=resource.name,
        options=_resource_options(resource),
    )


def _root_stack_resource(run: ProgramRun) -> Any:
    """The stack itself, its outputs as its properties (secrets marked, unknowns unknown), as the engine
    has them, so the stack policies read the outputs too."""
    from roadbike.program import STACK_TYPE

    return analyzer_pb2.AnalyzerResource(
        type=STACK_TYPE,
        properties=_struct(run.outputs),
        urn=run.stack_urn,
        name=run.stack_urn.rsplit("::", 1)[-1],
    )


def _stack_resource(resource: RecordedResource) -> Any:
    message = analyzer_pb2.AnalyzerResource(
        type=resource.type,
        properties=_struct(preview_outputs(resource)),
        urn=resource.urn,
        name=resource.name,
        options=_resource_options(resource),
        parent=resource.parent,
        dependencies=resource.dependencies,
    )
    for key, urns in resource.property_dependencies.items():
        message.propertyDependencies[key].CopyFrom(analyzer_pb2.AnalyzerPropertyDependencies(urns=urns))
    return message
