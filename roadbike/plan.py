"""`roadbike plan`: the program under the mock monitor, the real policy pack over gRPC, the plan tree."""

from __future__ import annotations

import contextlib
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from components.artifacts import render_artifacts
from components.config import PROJECT
from roadbike import console
from roadbike.analyzer import AnalysisSession, PolicyResult, load_policy_config, pack_processes, running_packs
from roadbike.artifacts import ArtifactConflict, all_artifacts, resource_artifacts
from roadbike.base import Base, BaseError, load_base
from roadbike.diff import ChangeSet, artifact_diffs, change_set
from roadbike.interpreter import batch_interpreter
from roadbike.locations import repository_uri
from roadbike.outdir import OutDirError, OutDirWriteError, PlanDirectory
from roadbike.program import ProgramRun, RecordedResource, run_program
from roadbike.providers import SECRET_TYPE, checked_inputs
from roadbike.redact import REDACTED, redact_program_run, scrub_policy
from roadbike.report import (
    dump_json,
    failure_files,
    mandatory_violations,
    plan_document,
    report_document,
    sarif_document,
    summary_markdown,
)
from roadbike.rulecheck import RuleCheck, analysis_rule_files, rule_files_of, rule_results
from roadbike.stackfile import SECRET_STAND_IN, load_stack, stack_file_path

# A Pulumi stack name, and a file name part: no '/', no '..', no leading '.' or '-'.
STACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


class UsageError(Exception):
    """Bad arguments or files given to the command (exit 2)."""


@dataclass
class PlanOptions:
    stack: str
    project_dir: Path
    config_file: Path | None = None
    out_dir: Path | None = None
    policy_pack_config: Path | None = None
    policy_pack_dir: Path | None = None
    against: str | None = None  # a git revision, a plan directory or a checkpoint (roadbike.base)


@dataclass
class PlanResult:
    run: ProgramRun
    policy: PolicyResult
    out_dir: Path
    seconds_total: float
    seconds_program: float
    seconds_policy: float
    report: dict[str, Any] = field(default_factory=dict)
    changes: ChangeSet = field(default_factory=lambda: ChangeSet([]))
    base: Base | None = None
    config: dict[str, str] = field(
        default_factory=dict
    )  # as `pulumi preview --json` shows it: secrets blinded

    @property
    def exit_code(self) -> int:
        return 1 if mandatory_violations(self.policy) or self.changes.refused() else 0


def find_project_dir(start: Path) -> Path:
    for directory in (start, *start.parents):
        if (directory / "Pulumi.yaml").is_file():
            return directory
    raise UsageError(f"no Pulumi.yaml in {start} or any parent directory: run roadbike from the project")


def check_stack_name(stack: str) -> str:
    if not STACK_NAME.fullmatch(stack) or ".." in stack:
        raise UsageError(
            f"--stack {stack!r}: not a stack name (letters, digits, '_', '.', '-', at most 100 characters, "
            "starting with a letter or digit, no '/' or '..')"
        )
    return stack


ENVIRONMENTS = ("dev", "staging", "prod")


def stack_name_warnings(stack: str, stack_path: Path, display: str, environment: str) -> list[str]:
    """A stack planned from another stack's file, or named like another environment, is named."""
    warnings = []
    file_stack = stack_path.name.removeprefix("Pulumi.").removesuffix(".yaml")
    if stack_path.name.startswith("Pulumi.") and file_stack != stack:
        warnings.append(f"stack {stack!r} is planned from {display}, the file of stack {file_stack!r}")
    if stack in ENVIRONMENTS and stack != environment:
        warnings.append(f"stack {stack!r} has roadbike:environment {environment!r} ({display})")
    return warnings


def record_failure(stack: str, out_dir: Path, errors: list[str]) -> bool:
    """A plan that could not run replaces the plan in `out_dir` by a record of its errors, so that no
    earlier result survives it. Only a directory that already exists, empty or a roadbike plan, is
    written: a refused run creates nothing, and a foreign directory is never touched."""
    try:
        check_stack_name(stack)
    except UsageError:
        return False
    if not out_dir.is_dir():
        return False
    try:
        with PlanDirectory(out_dir) as directory:  # the same rules: marker, lock, written beside, swapped in
            directory.write(failure_files(PROJECT, stack, errors))
            directory.commit()
    except (OSError, OutDirError, OutDirWriteError):
        return False
    return True


def _counted(
    submit: Callable[[RecordedResource], None], progress: console.Progress
) -> Callable[[RecordedResource], None]:
    def on_resource(resource: RecordedResource) -> None:
        submit(resource)
        progress.resource(resource)

    return on_resource


def _progress(message: str, err: TextIO) -> None:
    print(message, file=err, flush=True)


def run_plan(options: PlanOptions, err: TextIO = sys.stderr) -> PlanResult:
    with batch_interpreter():
        return _run_plan(options, err)


def _run_plan(options: PlanOptions, err: TextIO) -> PlanResult:
    started = time.perf_counter()
    check_stack_name(options.stack)
    project_dir = options.project_dir
    stack_path = options.config_file or stack_file_path(project_dir, options.stack)
    try:
        display = str(stack_path.resolve().relative_to(project_dir.resolve()))
    except ValueError:
        display = str(stack_path)
    stack_file, config = load_stack(stack_path, display)  # ConfigError -> exit 2, before any resource
    for notice in stack_file.notices:
        _progress(f"note: {notice}", err)
    for warning in stack_name_warnings(options.stack, stack_path, display, config.environment):
        print(f"warning: {warning}", file=err)
    try:
        policy_config = load_policy_config(options.policy_pack_config)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    base = _load_base(options, project_dir, err)
    out_dir = options.out_dir or project_dir / "out" / options.stack
    try:
        with PlanDirectory(out_dir) as directory:
            return _plan_into(
                options, directory, stack_file, config, policy_config, stack_path, display, started, err, base
            )
    except OutDirError as exc:
        raise UsageError(str(exc)) from None


def _plan_into(
    options: PlanOptions,
    directory: PlanDirectory,
    stack_file: Any,
    config: Any,
    policy_config: dict[str, Any],
    stack_path: Path,
    display: str,
    started: float,
    err: TextIO,
    base: Base | None,
) -> PlanResult:
    project_dir = options.project_dir
    out_dir = directory.out_dir
    pack_dir = (options.policy_pack_dir or project_dir / "policies").resolve()

    with (
        contextlib.ExitStack() as stack,
        running_packs(pack_dir, PROJECT, options.stack, pack_processes()) as packs,
    ):
        source = str(options.policy_pack_config or "--policy-pack-config")
        session = AnalysisSession(
            packs,
            PROJECT,
            options.stack,
            policy_config,
            source,
            stack_file.pulumi_config(),
            stack_file.secret_keys,
        )
        # The config's own artifacts need no resource: rendered now, their rules checked by promtool on
        # another core while the program runs.
        config_files = render_artifacts(config)
        rules_check = stack.enter_context(RuleCheck(rule_files_of(config_files)))
        _progress(f"Running the program for stack {options.stack} under the mock monitor...", err)
        program_started = time.perf_counter()
        run = run_program(
            project_dir,
            PROJECT,
            options.stack,
            stack_file.pulumi_config(),
            stack_file.secret_keys,
            on_resource=_counted(session.submit, console.Progress(err)),
        )
        seconds_program = time.perf_counter() - program_started
        _progress(
            f"Analyzing {len(run.resources)} resources with the policy pack in {pack_dir.name}/...", err
        )
        policy_started = time.perf_counter()
        recorded = run
        rendered: dict[str, Any] = {}

        def render() -> None:  # needs no policy result: runs while the pack finishes the analysis
            try:
                rendered["run"], rendered["secrets"] = redact_program_run(recorded)
                rendered["artifacts"] = all_artifacts(rendered["run"], config, config_files)
                with RuleCheck(analysis_rule_files(rendered["artifacts"])) as analysis_check:
                    # ConfigError (exit 2) when a rule is invalid
                    rendered["rule_warning"] = rule_results([rules_check, analysis_check], config, display)
            except Exception as exc:  # raised after the analysis, as when it ran after it
                rendered["error"] = exc

        try:
            policy = session.finish(run, meanwhile=render)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        seconds_policy = time.perf_counter() - policy_started
        if "error" in rendered:
            raise rendered["error"]

    # From here on, nothing holds a secret in clear.
    run, policy = rendered["run"], scrub_policy(policy, rendered["secrets"])
    artifacts = rendered["artifacts"]
    changes, diffs = _changes(run, base, artifacts)
    report = report_document(policy, run)
    stack_text = stack_file.text
    counts = Counter(r.type for r in run.resources)
    files = {
        "plan.json": dump_json(plan_document(run, changes)),
        "policy/report.json": dump_json(report),
        "policy/report.sarif": dump_json(sarif_document(policy, run, repository_uri(stack_path), stack_text)),
        "policy/summary.md": summary_markdown(
            policy, run, dict(counts), changes, diffs, base.problems if base else []
        ),
    }
    for path, text in artifacts.items():
        if path in files:
            raise ArtifactConflict(path, "the plan's own files", f"the {path} artifact")
        files[path] = text
    if rendered["rule_warning"]:
        _progress(f"warning: {rendered['rule_warning']}", err)
    directory.write(files)  # beside the previous plan; swapped in only once complete
    directory.commit()
    return PlanResult(
        run=run,
        policy=policy,
        out_dir=out_dir,
        seconds_total=time.perf_counter() - started,
        seconds_program=seconds_program,
        seconds_policy=seconds_policy,
        report=report,
        changes=changes,
        base=base,
        config=blinded_config(stack_file.pulumi_config()),
    )


def blinded_config(config: dict[str, str]) -> dict[str, str]:
    """The config with every secret stand-in `[secret]`, as the Pulumi CLI blinds it."""
    quoted = json.dumps(SECRET_STAND_IN)
    return {
        key: REDACTED if value == SECRET_STAND_IN else value.replace(quoted, json.dumps(REDACTED))
        for key, value in sorted(config.items())
    }


def _load_base(options: PlanOptions, project_dir: Path, err: TextIO) -> Base | None:
    if options.against is None:
        return None
    _progress(f"Reading the base {options.against} of stack {options.stack}...", err)
    try:
        return load_base(options.against, options.stack, PROJECT, project_dir, options.config_file)
    except BaseError as exc:
        raise UsageError(str(exc)) from None


def _changes(
    run: ProgramRun, base: Base | None, artifacts: dict[str, str]
) -> tuple[ChangeSet, dict[str, str]]:
    """The change set against the base and the diffs of the artifacts it changes."""
    head = plan_document(run)["resources"]
    if base is None or base.resources is None:
        label = base.label if base else ""
        return change_set(None, head, run.stack_urn, base_label=label), {}
    if base.checked_inputs:
        checked = {r.urn: _state_inputs(r) for r in run.resources}
        head = [{**r, "inputs": checked[r["urn"]]} for r in head]
    changes = change_set(base.resources, head, run.stack_urn, base.outputs, run.outputs, base.label)
    head_files = resource_artifacts(run) if base.resource_artifacts_only else artifacts
    base_files = base.artifacts
    if base.resource_artifacts_only:
        base_files = resource_artifacts(
            ProgramRun(run.project, run.stack, [_recorded(r) for r in base.resources])
        )
    return changes, artifact_diffs(base_files, head_files)


def _state_inputs(resource: RecordedResource) -> dict[str, Any]:
    """The checked inputs of a resource whose secrets are already `[secret]`, as the engine records them
    in state: a Secret's `[secret]` stringData is a `[secret]` data."""
    inputs = resource.inputs
    if resource.type == SECRET_TYPE and REDACTED in (inputs.get("stringData"), inputs.get("data")):
        return {**{k: v for k, v in inputs.items() if k != "stringData"}, "data": REDACTED}
    return checked_inputs(resource)


def _recorded(resource: dict[str, Any]) -> RecordedResource:
    return RecordedResource(
        urn=resource["urn"],
        type=resource["type"],
        name=resource["name"],
        custom=bool(resource.get("custom")),
        parent=str(resource.get("parent", "")),
        dependencies=list(resource.get("dependencies") or []),
        property_dependencies={},
        inputs=resource.get("inputs") or {},
        protect=resource.get("protect") is True,
    )


def print_plan(result: PlanResult, out: TextIO, show_diff: bool = False) -> None:
    violations = result.policy.violations
    style = console.Style.for_stream(out)
    console.print_base(result.base, out)
    console.print_tree(result.run, result.changes, out, style)
    if show_diff:
        console.print_diff(result.changes, out, style)
    console.print_policies(result.policy, result.run, violations, out, style)
    console.print_outputs(result.run, result.changes, out, style)
    console.print_summary(result.changes, violations, str(result.out_dir), result.seconds_total, out, style)
