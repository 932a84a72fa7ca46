"""The real Pulumi engine, offline: `pulumi preview --policy-pack policies` of a stack in a scratch copy.

The CLI, the Python language host and the provider plugins are the ones `make engine` builds from their
Go modules (tools/go-tools.txt); the state is a file:// backend in a temporary directory, secrets use the
passphrase provider, plugin downloads are off and no GitHub token reaches the engine. The project is
copied because `pulumi stack init` and `pulumi config set` write the stack file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policies.recorder import RECORD_VARIABLE
from tests.helpers import REPO

ENGINE_TOOLS = (
    "pulumi",
    "pulumi-language-python",
    "pulumi-resource-kubernetes",
    "pulumi-resource-docker-build",
    "pulumi-resource-random",
    "pulumi-resource-pulumi-python",
)
PROJECT_FILES = ("Pulumi.yaml", "__main__.py", "components", "policies")
PASSPHRASE = "roadbike-test-passphrase"  # encrypts only the scratch stack's stand-in secrets
PREVIEW_TIMEOUT = 900
# Resources only the engine has: the stack itself and the default providers it makes.
ENGINE_ONLY_TYPES = ("pulumi:pulumi:Stack",)
DEFAULT_PROVIDER_MARK = "::default_"


def engine_bin() -> Path:
    """Where `make engine` put the CLI and plugins; a missing one fails the test naming the target."""
    path = Path(os.environ.get("ROADBIKE_ENGINE_BIN") or Path.home() / ".cache/roadbike/tools/bin")
    missing = [tool for tool in ENGINE_TOOLS if not (path / tool).exists()]
    if missing:
        raise AssertionError(
            f"the Pulumi engine is not built in {path} (missing {', '.join(missing)}): run `make engine`"
        )
    return path


@dataclass
class Preview:
    """What the engine reported, from its stream of JSON events (`PULUMI_ENABLE_STREAMING_JSON_PREVIEW`)."""

    stack: str
    returncode: int
    events: list[dict[str, Any]]
    stack_file: Path
    output: str
    seconds: float
    document: dict[str, Any] | None = None  # `pulumi preview --json` without streaming: one document

    def _of(self, kind: str) -> list[dict[str, Any]]:
        return [event[kind] for event in self.events if kind in event]

    def resources(self) -> dict[str, dict[str, Any]]:
        """URN -> new state of every resource the program registers (not the stack, not default providers)."""
        return {
            event["metadata"]["urn"]: event["metadata"]["new"]
            for event in self._of("resourcePreEvent")
            if event["metadata"]["type"] not in ENGINE_ONLY_TYPES
            and DEFAULT_PROVIDER_MARK not in event["metadata"]["urn"]
        }

    def outputs(self) -> dict[str, Any]:
        """The stack outputs as the engine last saw them (unknowns as the engine's unknown marker)."""
        found: dict[str, Any] = {}
        for event in self._of("resOutputsEvent"):
            if event["metadata"]["type"] == "pulumi:pulumi:Stack":
                found = event["metadata"]["new"].get("outputs") or found
        return found

    def violations(self) -> set[tuple[str, str, str]]:
        """(policy, enforcement level, urn) of each violation the engine reported."""
        return {
            (event["policyName"], event["enforcementLevel"], event.get("resourceUrn", ""))
            for event in self._of("policyEvent")
        }

    def not_applicable(self, not_run_marker: str) -> set[str]:
        """The policies the engine reports as not run: not applicable, or a diagnostic that says so."""
        names = {e["policyName"] for e in self._of("policyEvent") if not_run_marker in e.get("message", "")}
        for kind in ("policyAnalyzeSummaryEvent", "policyAnalyzeStackSummaryEvent"):
            for event in self._of(kind):
                names |= {
                    str(item.get("policyName", item)) if isinstance(item, dict) else str(item)
                    for item in event.get("notApplicable") or []
                }
        return names

    def changes(self) -> dict[str, int]:
        """The summary's change counts by operation (`create`, `same`, `update`, `delete`, ...)."""
        summaries = self._of("summaryEvent")
        return dict(summaries[-1].get("resourceChanges") or {}) if summaries else {}

    def result(self) -> str:
        summaries = self._of("summaryEvent")
        return str(summaries[-1].get("result", "")) if summaries else ""


def _environment(home: Path, state: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PULUMI_", "KUBECONFIG"))}
    venv_bin = Path(sys.executable).parent
    environ.update(
        PATH=f"{engine_bin()}{os.pathsep}{venv_bin}{os.pathsep}{environ.get('PATH', '')}",
        PULUMI_HOME=str(home),
        PULUMI_BACKEND_URL=f"file://{state}",
        PULUMI_CONFIG_PASSPHRASE=PASSPHRASE,
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
        PULUMI_SKIP_UPDATE_CHECK="true",
        PULUMI_SKIP_CONFIRMATIONS="true",
        NO_COLOR="1",
        KUBECONFIG=str(home / "no-kubeconfig"),
    )
    return environ


def _copy_project(stack: str, stack_file: Path, into: Path) -> Path:
    into.mkdir(parents=True)
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=shutil.ignore_patterns("venv", "__pycache__"))
        else:
            shutil.copy2(source, into / name)
    (into / "stacks").mkdir()
    shutil.copy2(stack_file, into / "stacks" / f"Pulumi.{stack}.yaml")
    # The program's virtualenv (Pulumi.yaml: .venv) and the pack's (PulumiPolicy.yaml: venv).
    (into / ".venv").symlink_to(Path(sys.executable).parent.parent)
    (into / "policies" / "venv").symlink_to(_policy_venv())
    return into


def _policy_venv() -> Path:
    python = Path(
        os.environ.get("ROADBIKE_POLICY_PYTHON") or REPO / ".tools" / "policy-venv" / "bin" / "python"
    )
    if not python.exists():
        raise AssertionError(f"the policy pack's virtualenv is missing ({python}): run `make tools`")
    return python.absolute().parent.parent


def _pulumi(
    args: list[str], cwd: Path, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["pulumi", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@dataclass
class ScratchStack:
    """A stack of a scratch copy of the project on its own file backend: run `pulumi` commands on it."""

    stack: str
    project: Path
    env: dict[str, str]

    @property
    def stack_file(self) -> Path:
        return self.project / "stacks" / f"Pulumi.{self.stack}.yaml"

    def pulumi(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return _pulumi(list(args), self.project, self.env, timeout=timeout)

    def configure(self, settings: dict[str, str], secret: bool = False) -> None:
        """`pulumi config set --path KEY VALUE` (`--secret` for `secret`) of each setting."""
        flag = ["--secret"] if secret else []
        for key, value in settings.items():
            done = self.pulumi("config", "set", "--stack", self.stack, "--path", *flag, key, value)
            assert done.returncode == 0, f"pulumi config set {key}: {done.stderr}"

    def run(self, command: str, *args: str, streaming_preview: bool = False) -> Preview:
        """`pulumi COMMAND --stack STACK --json ARGS` and its events (one JSON document per line)."""
        env = dict(self.env)
        if streaming_preview:
            env["PULUMI_ENABLE_STREAMING_JSON_PREVIEW"] = "true"
        started = time.perf_counter()
        done = _pulumi([command, "--stack", self.stack, "--json", *args], self.project, env, PREVIEW_TIMEOUT)
        seconds = time.perf_counter() - started
        events = []
        for line in done.stdout.splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                raise AssertionError(
                    f"pulumi {command} printed a line that is not a JSON event: {line[:200]}"
                ) from None
        return Preview(
            stack=self.stack,
            returncode=done.returncode,
            events=events,
            stack_file=self.stack_file,
            output=done.stdout + done.stderr,
            seconds=seconds,
        )


def scratch_stack(
    stack: str,
    workdir: Path,
    stack_file: Path | None = None,
    settings: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
) -> ScratchStack:
    """A scratch copy of the project with STACK initialised (passphrase secrets) and configured."""
    env = _environment(workdir / "home", workdir / "state")
    (workdir / "state").mkdir(parents=True)
    project = _copy_project(
        stack, stack_file or REPO / "stacks" / f"Pulumi.{stack}.yaml", workdir / "project"
    )
    scratch = ScratchStack(stack, project, env)
    init = scratch.pulumi("stack", "init", stack, "--secrets-provider", "passphrase")
    assert init.returncode == 0, f"pulumi stack init {stack}: {init.stderr}"
    scratch.configure(settings or {})
    scratch.configure(secrets or {}, secret=True)
    return scratch


def real_preview(
    stack: str,
    workdir: Path,
    stack_file: Path | None = None,
    settings: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
    streaming: bool = True,
    record: Path | None = None,
) -> Preview:
    """`pulumi preview --stack STACK --policy-pack policies` of a scratch copy of the project.

    `settings` and `secrets` are `pulumi config set --path KEY VALUE` (with `--secret` for the latter),
    applied to the copy's stack file before the preview. With `record`, the pack writes what it receives
    there (policies/recorder.py).
    """
    scratch = scratch_stack(stack, workdir, stack_file, settings, secrets)
    if record is not None:
        scratch.env[RECORD_VARIABLE] = str(record)
    if streaming:
        return scratch.run("preview", "--policy-pack", "policies", streaming_preview=True)
    started = time.perf_counter()
    done = scratch.pulumi(
        "preview", "--stack", stack, "--policy-pack", "policies", "--json", timeout=PREVIEW_TIMEOUT
    )
    seconds = time.perf_counter() - started
    return Preview(
        stack, done.returncode, [], scratch.stack_file, done.stderr, seconds, json.loads(done.stdout)
    )
