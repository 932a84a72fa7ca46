"""`roadbike plan`: the program under the mock monitor, the real policy pack over gRPC, the plan tree."""

from __future__ import annotations

import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from components.config import PROJECT
from roadbike import console
from roadbike.analyzer import AnalysisSession, PolicyResult, load_policy_config, pack_processes, running_packs
from roadbike.artifacts import ArtifactConflict, all_artifacts
from roadbike.outdir import OutDirError, PlanDirectory
from roadbike.program import ProgramRun, run_program
from roadbike.redact import redact_run
from roadbike.report import (
    dump_json,
    mandatory_violations,
    plan_document,
    report_document,
    sarif_document,
    summary_markdown,
)
from roadbike.rulecheck import check_rule_files
from roadbike.stackfile import load_stack, stack_file_path

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


@dataclass
class PlanResult:
    run: ProgramRun
    policy: PolicyResult
    out_dir: Path
    seconds_total: float
    seconds_program: float
    seconds_policy: float
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 1 if mandatory_violations(self.policy) else 0


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


def _progress(message: str, err: TextIO) -> None:
    print(message, file=err, flush=True)


def run_plan(options: PlanOptions, err: TextIO = sys.stderr) -> PlanResult:
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
    try:
        policy_config = load_policy_config(options.policy_pack_config)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    out_dir = options.out_dir or project_dir / "out" / options.stack
    try:
        with PlanDirectory(out_dir) as directory:
            return _plan_into(
                options, directory, stack_file, config, policy_config, stack_path, display, started, err
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
) -> PlanResult:
    project_dir = options.project_dir
    out_dir = directory.out_dir
    pack_dir = (options.policy_pack_dir or project_dir / "policies").resolve()

    with running_packs(pack_dir, PROJECT, options.stack, pack_processes()) as packs:
        source = str(options.policy_pack_config or "--policy-pack-config")
        session = AnalysisSession(packs, PROJECT, options.stack, policy_config, source)
        _progress(f"Running the program for stack {options.stack} under the mock monitor...", err)
        program_started = time.perf_counter()
        run = run_program(
            project_dir,
            PROJECT,
            options.stack,
            stack_file.pulumi_config(),
            stack_file.secret_keys,
            on_resource=session.submit,
        )
        seconds_program = time.perf_counter() - program_started
        _progress(
            f"Analyzing {len(run.resources)} resources with the policy pack in {pack_dir.name}/...", err
        )
        policy_started = time.perf_counter()
        try:
            policy = session.finish(run)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        seconds_policy = time.perf_counter() - policy_started

    run, policy = redact_run(run, policy)  # from here on, nothing holds a secret in clear
    report = report_document(policy, run)
    stack_text = stack_file.text
    counts = Counter(r.type for r in run.resources)
    files = {
        "plan.json": dump_json(plan_document(run)),
        "policy/report.json": dump_json(report),
        "policy/report.sarif": dump_json(sarif_document(policy, run, display, stack_text)),
        "policy/summary.md": summary_markdown(policy, run, dict(counts)),
    }
    for path, text in all_artifacts(run, config).items():
        if path in files:
            raise ArtifactConflict(path, "the plan's own files", f"the {path} artifact")
        files[path] = text
    warning = check_rule_files(config, files, display)  # ConfigError (exit 2) when a rule is invalid
    if warning:
        _progress(f"warning: {warning}", err)
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
    )


def print_plan(result: PlanResult, out: TextIO) -> None:
    violations = result.policy.violations
    console.print_tree(result.run, out)
    console.print_policies(result.policy, result.run, violations, out)
    console.print_outputs(result.run, out)
    console.print_summary(result.run, violations, str(result.out_dir), result.seconds_total, out)
