"""What `roadbike plan --against BASE` compares the plan with: a git revision, a plan directory, a checkpoint.

- a directory holding `plan.json`: an earlier `roadbike plan` of the stack, read as it is;
- a file: `pulumi stack export` of the stack (its resources' inputs as the engine recorded them);
- anything else: a git revision of the project. Its tree (`git archive`) is unpacked in a temporary
  directory and its own `roadbike plan` plans its own stack file there, in a subprocess, so the base is
  planned by the program and the code of that revision.

Every failure is a `BaseError` (exit 2) saying what is wrong; nothing is written beside the project.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roadbike.redact import redact

GIT_TIMEOUT_SECONDS = 60.0
BASE_PLAN_TIMEOUT_SECONDS = 600.0
MAX_ARCHIVE_BYTES = 256 * 1024 * 1024
MAX_BASE_FILE_BYTES = 64 * 1024 * 1024
MAX_REVISION_LENGTH = 256
CONFIG_ERROR_LINE = "error: invalid stack config; no resource was planned"
REPORT_DIRS = ("policy",)
PLAN_FILE = "plan.json"
PLAN_MARKER = ".roadbike-plan.json"  # roadbike.outdir.MARKER: the list of files a plan wrote, not an artifact


class BaseError(Exception):
    """The base cannot be read or planned (exit 2)."""


@dataclass
class Base:
    label: str  # how the plan names its base: "main (dc654af)", a directory, a checkpoint file
    resources: list[dict[str, Any]] | None  # plan.json form; None: the base does not plan (see problems)
    outputs: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    resource_artifacts_only: bool = False  # a checkpoint has no rendered files, only its resources
    checked_inputs: bool = False  # a checkpoint records the inputs after the provider's Check
    problems: list[str] = field(default_factory=list)  # why the base does not plan, or a note about it


def load_base(spec: str, stack: str, project: str, project_dir: Path, config_file: Path | None) -> Base:
    path = Path(spec)
    if path.is_dir():
        return read_plan_dir(path, stack, str(path))
    if path.is_file():
        return read_checkpoint(path, stack, project)
    return plan_revision(spec, stack, project_dir, config_file)


def _read_text(path: Path, what: str) -> str:
    try:
        if path.stat().st_size > MAX_BASE_FILE_BYTES:
            raise BaseError(f"{path}: larger than {MAX_BASE_FILE_BYTES // (1024 * 1024)} MiB; not {what}")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BaseError(f"{path}: not UTF-8 text; not {what}") from None
    except OSError as exc:
        raise BaseError(f"{path}: cannot be read: {exc.strerror or exc}") from None


def _read_json(path: Path, what: str) -> Any:
    text = _read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaseError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from None
    except RecursionError:
        raise BaseError(f"{path}: nested too deeply; not {what}") from None


def read_plan_dir(directory: Path, stack: str, label: str) -> Base:
    """An earlier plan: its plan.json and every artifact file beside it (the policy reports left out)."""
    plan_path = directory / PLAN_FILE
    if not plan_path.is_file():
        raise BaseError(f"--against {directory}: no {PLAN_FILE}; not a roadbike plan directory")
    document = _read_json(plan_path, "a roadbike plan")
    if not isinstance(document, dict) or not isinstance(document.get("resources"), list):
        raise BaseError(f"{plan_path}: resources: missing or not a list; not a roadbike plan")
    if document.get("stack") != stack:
        raise BaseError(f"{plan_path}: stack: a plan of stack {document.get('stack')!r}, not {stack!r}")
    if document.get("error"):
        problems = [str(line) for line in document["error"]] if isinstance(document["error"], list) else []
        return Base(label, None, problems=problems or ["the base plan failed"])
    for index, resource in enumerate(document["resources"]):
        if not isinstance(resource, dict) or not all(
            isinstance(resource.get(key), str) for key in ("urn", "type", "name")
        ):
            raise BaseError(f"{plan_path}: resources[{index}]: not a resource (urn, type and name)")
    artifacts = {}
    for file in sorted(directory.rglob("*")):
        relative = file.relative_to(directory)
        if (
            file.is_file()
            and relative.parts[0] not in REPORT_DIRS
            and relative.name not in (PLAN_FILE, PLAN_MARKER)
        ):
            artifacts[relative.as_posix()] = _read_text(file, "a plan artifact")
    outputs = document.get("outputs")
    return Base(label, document["resources"], outputs if isinstance(outputs, dict) else {}, artifacts)


def _urn_parts(urn: str) -> tuple[str, str, str, str] | None:
    """(stack, project, type chain, name) of `urn:pulumi:STACK::PROJECT::TYPES::NAME`."""
    if not urn.startswith("urn:pulumi:"):
        return None
    parts = urn.removeprefix("urn:pulumi:").split("::", 3)
    return (parts[0], parts[1], parts[2], parts[3]) if len(parts) == 4 else None


def _is_default_provider(resource: dict[str, Any]) -> bool:
    # The engine makes these by itself; the plan, like `pulumi preview`'s tree, never shows them.
    name = str(resource.get("urn", "")).rsplit("::", 1)[-1]
    return str(resource.get("type", "")).startswith("pulumi:providers:") and name.startswith("default")


def _checkpoint_resource(resource: dict[str, Any], where: str) -> dict[str, Any]:
    raw = resource.get("inputs")
    inputs: dict[str, Any] = raw if isinstance(raw, dict) else {}
    parts = _urn_parts(resource["urn"])
    assert parts is not None
    return {
        "urn": resource["urn"],
        "type": str(resource.get("type", "")),
        "name": parts[3],
        "custom": bool(resource.get("custom", False)),
        "parent": str(resource.get("parent", "")),
        "provider": str(resource.get("provider", "")),
        "inputs": redact({k: v for k, v in inputs.items() if not k.startswith("__")}),
        "dependencies": sorted(str(d) for d in resource.get("dependencies") or []),
        **({"protect": True} if resource.get("protect") is True else {}),
    }


def read_checkpoint(path: Path, stack: str, project: str) -> Base:
    """`pulumi stack export` of the stack: its resources, the stack's outputs; secrets stay `[secret]`."""
    document = _read_json(path, "a checkpoint")
    deployment = document.get("deployment") if isinstance(document, dict) else None
    resources = deployment.get("resources", []) if isinstance(deployment, dict) else None
    if not isinstance(resources, list):
        raise BaseError(f"{path}: deployment.resources: missing; not a `pulumi stack export` checkpoint")
    found: list[dict[str, Any]] = []
    outputs: dict[str, Any] = {}
    for index, resource in enumerate(resources):
        where = f"{path}: deployment.resources[{index}]"
        parts = _urn_parts(resource.get("urn", "")) if isinstance(resource, dict) else None
        if parts is None:
            raise BaseError(f"{where}.urn: missing or not a Pulumi URN")
        assert isinstance(resource, dict)
        if parts[0] != stack or parts[1] != project:
            raise BaseError(
                f"{where}.urn: a checkpoint of stack {parts[0]!r} of project {parts[1]!r}, "
                f"not {stack!r} of {project!r}"
            )
        if resource.get("type") == "pulumi:pulumi:Stack":
            outputs = redact(resource.get("outputs") or {})
        elif not _is_default_provider(resource) and not resource.get("delete"):
            found.append(_checkpoint_resource(resource, where))
    return Base(f"checkpoint {path}", found, outputs, resource_artifacts_only=True, checked_inputs=True)


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT_SECONDS, check=False
        )
    except FileNotFoundError:
        raise BaseError("--against: git is not installed (Debian package git)") from None
    except subprocess.TimeoutExpired:
        raise BaseError(f"--against: `git {args[0]}` took longer than {GIT_TIMEOUT_SECONDS:.0f}s") from None


def _resolve_revision(revision: str, project_dir: Path) -> tuple[str, Path]:
    """(commit, repository top) of a revision; a revision that is no commit is a BaseError."""
    if not revision or revision.startswith("-") or len(revision) > MAX_REVISION_LENGTH or "\0" in revision:
        raise BaseError(f"--against {revision!r}: not a git revision, a plan directory or a checkpoint file")
    top = _git(["rev-parse", "--show-toplevel"], project_dir)
    if top.returncode != 0:
        raise BaseError(
            f"--against {revision}: no such plan directory or checkpoint file, and {project_dir} is not "
            "in a git repository"
        )
    commit = _git(
        ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}"], project_dir
    )
    if commit.returncode != 0:
        raise BaseError(
            f"--against {revision}: no such git revision (nor plan directory or checkpoint file); "
            "in CI, fetch it first (actions/checkout with fetch-depth: 0)"
        )
    return commit.stdout.strip(), Path(top.stdout.strip())


def _unpack(commit: str, top: Path, into: Path) -> None:
    archive = into / "base.tar"
    result = _git(["archive", "--format=tar", "-o", str(archive), commit], top)
    if result.returncode != 0:
        raise BaseError(f"--against: git archive {commit[:12]} failed: {result.stderr.strip()}")
    if archive.stat().st_size > MAX_ARCHIVE_BYTES:
        raise BaseError(f"--against: the tree of {commit[:12]} is larger than {MAX_ARCHIVE_BYTES >> 20} MiB")
    with tarfile.open(archive) as tar:
        tar.extractall(into / "tree", filter="data")
    archive.unlink()


def _base_stack_file(project_dir: Path, base_project: Path, stack: str, config_file: Path | None) -> Path:
    if config_file is None:
        return base_project / "stacks" / f"Pulumi.{stack}.yaml"
    try:
        return base_project / config_file.resolve().relative_to(project_dir.resolve())
    except ValueError:
        return config_file.resolve()  # outside the project: the same file, planned by the base's program


def _error_lines(stderr: str) -> list[str]:
    return [line.removeprefix("error: ") for line in stderr.splitlines() if line.startswith("error: ")]


def plan_revision(revision: str, stack: str, project_dir: Path, config_file: Path | None) -> Base:
    commit, top = _resolve_revision(revision, project_dir)
    label = f"{revision} ({commit[:7]})" if not commit.startswith(revision) else commit[:7]
    with tempfile.TemporaryDirectory(prefix="roadbike-base-") as scratch:
        work = Path(scratch)
        _unpack(commit, top, work)
        base_project = work / "tree" / project_dir.resolve().relative_to(top.resolve())
        stack_file = _base_stack_file(project_dir, base_project, stack, config_file)
        if not stack_file.is_file():
            note = f"{stack_file.relative_to(work / 'tree')} does not exist at {label}: the stack is new"
            return Base(label, [], problems=[note])
        out = work / "plan"
        command = [sys.executable, "-m", "roadbike.cli", "plan", "--stack", stack, "--out", str(out)]
        if config_file is not None:
            command += ["--config-file", str(stack_file)]
        environment = {**os.environ, "PYTHONPATH": str(base_project), "NO_COLOR": "1"}
        try:
            result = subprocess.run(
                command,
                cwd=base_project,
                env=environment,
                capture_output=True,
                text=True,
                timeout=BASE_PLAN_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise BaseError(
                f"--against {revision}: the base did not plan within {BASE_PLAN_TIMEOUT_SECONDS:.0f}s"
            ) from None
        if result.returncode in (0, 1) and (out / PLAN_FILE).is_file():
            return read_plan_dir(out, stack, label)
        if CONFIG_ERROR_LINE in result.stderr:
            problems = [line for line in _error_lines(result.stderr) if f"error: {line}" != CONFIG_ERROR_LINE]
            return Base(label, None, problems=problems)
        detail = "; ".join(_error_lines(result.stderr)[-3:]) or result.stderr.strip()[-500:]
        raise BaseError(
            f"--against {revision}: the base {commit[:7]} does not plan (exit {result.returncode}): {detail}"
        )
