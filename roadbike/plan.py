"""`roadbike plan`: the program under the mock monitor, the real policy pack over gRPC, the plan tree."""

from __future__ import annotations

import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from components.config import PROJECT
from roadbike import console
from roadbike.analyzer import AnalysisSession, PolicyResult, load_policy_config, pack_processes, running_packs
from roadbike.artifacts import all_artifacts, write_tree
from roadbike.program import ProgramRun, run_program
from roadbike.redact import redact_run
from roadbike.report import (
    mandatory_violations,
    plan_document,
    report_document,
    sarif_document,
    summary_markdown,
    write_json,
)
from roadbike.stackfile import load_stack, stack_file_path

PLAN_MARKER = "plan.json"


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


def _prepare_out_dir(out_dir: Path) -> None:
    try:
        _replace_out_dir(out_dir)
    except OSError as exc:
        raise UsageError(f"--out {out_dir}: {exc.strerror or exc}") from None


def _replace_out_dir(out_dir: Path) -> None:
    if out_dir.exists():
        if not out_dir.is_dir():
            raise UsageError(f"--out {out_dir}: exists and is not a directory")
        if any(out_dir.iterdir()) and not (out_dir / PLAN_MARKER).is_file():
            raise UsageError(
                f"--out {out_dir}: not empty and not a roadbike plan directory; refusing to overwrite"
            )
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)


def _progress(message: str, err: TextIO) -> None:
    print(message, file=err, flush=True)


def run_plan(options: PlanOptions, err: TextIO = sys.stderr) -> PlanResult:
    started = time.perf_counter()
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
    _prepare_out_dir(out_dir)
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
    write_json(out_dir / "plan.json", plan_document(run))
    write_json(out_dir / "policy" / "report.json", report)
    stack_text = stack_path.read_text(encoding="utf-8")
    write_json(out_dir / "policy" / "report.sarif", sarif_document(policy, run, display, stack_text))
    counts = Counter(r.type for r in run.resources)
    (out_dir / "policy" / "summary.md").write_text(
        summary_markdown(policy, run, dict(counts)), encoding="utf-8"
    )
    write_tree(out_dir, all_artifacts(run, config))
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
