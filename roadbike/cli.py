"""The `roadbike` command: `plan` (offline preview with the real policy pack) and `verify`."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from components.config import ConfigError
from roadbike import interrupt, verify
from roadbike.analyzer import PolicyPackError
from roadbike.exits import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="roadbike",
        description="The delivery chain of Go services as code: plan offline under the policy gate, verify live.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    plan = commands.add_parser(
        "plan",
        help="preview a stack offline and run the policy pack on it",
        description="Run the Pulumi program under the mock monitor with the stack's config, run the real "
        "policy pack over the Analyzer protocol, and write the plan, the policy reports and the artifacts. "
        "Exit 0: no mandatory violation; 1: mandatory violations, or (--against) a protected resource deleted "
        "or replaced; 2: invalid config or usage; "
        "3: internal error (the policy pack died, the plan could not be written); 130: interrupted.",
    )
    plan.add_argument("--stack", required=True, help="stack name: reads stacks/Pulumi.NAME.yaml")
    plan.add_argument(
        "--config-file", type=Path, help="stack config file to read instead of stacks/Pulumi.NAME.yaml"
    )
    plan.add_argument("--out", type=Path, help="output directory (default: out/NAME)")
    plan.add_argument(
        "--policy-pack-config", type=Path, help="policy pack config JSON, as for pulumi preview"
    )
    plan.add_argument(
        "--against",
        metavar="BASE",
        help="show what changes from BASE: a git revision (its program and stack file are planned), "
        "an earlier plan directory, or a `pulumi stack export` checkpoint of the stack",
    )
    plan.add_argument("--diff", action="store_true", help="show each change's old and new property values")
    plan.add_argument(
        "--json", action="store_true", help="print the preview as `pulumi preview --json` does, errors too"
    )
    verify.add_parser(commands)
    return parser


def _plan(args: argparse.Namespace) -> int:
    from roadbike.artifacts import ArtifactConflict
    from roadbike.diff import refusal
    from roadbike.outdir import OutDirWriteError
    from roadbike.plan import PlanOptions, UsageError, find_project_dir, print_plan, run_plan
    from roadbike.report import preview_document

    planned_before = _is_dir(_out_dir(args))
    try:
        project_dir = find_project_dir(Path.cwd())
        options = PlanOptions(
            stack=args.stack,
            project_dir=project_dir,
            config_file=args.config_file,
            out_dir=args.out,
            policy_pack_config=args.policy_pack_config,
            against=args.against,
        )
        result = run_plan(options)
    except ConfigError as error:
        lines = [*error.problems, "invalid stack config; no resource was planned"]
        return _failed(args, lines, EXIT_USAGE, planned_before)
    except UsageError as error:
        return _failed(args, [str(error)], EXIT_USAGE, planned_before)
    except (PolicyPackError, ArtifactConflict, OutDirWriteError) as error:
        return _failed(args, [str(error)], EXIT_INTERNAL, planned_before)
    if args.json:
        print(json.dumps(preview_document(result), indent=4, sort_keys=True, ensure_ascii=False))
    else:
        print_plan(result, sys.stdout, show_diff=args.diff)
    for step in result.changes.refused():
        print(f"error: {refusal(step)}", file=sys.stderr)
    mandatory = int(result.report["summary"]["mandatory"])
    if mandatory:
        noun = "violation" if mandatory == 1 else "violations"
        print(f"error: the policy gate failed: {mandatory} mandatory policy {noun}", file=sys.stderr)
    return result.exit_code


def _internal_error(error: BaseException) -> int:
    """A crash: one line naming where it happened (the traceback with ROADBIKE_DEBUG=1), exit 3."""
    import os

    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    print(f"error: internal error: {type(error).__name__}{where}: {str(error)[:500]}", file=sys.stderr)
    if os.environ.get("ROADBIKE_DEBUG"):
        traceback.print_exception(error, file=sys.stderr)
    else:
        print("error: this is a bug in roadbike; ROADBIKE_DEBUG=1 prints the traceback", file=sys.stderr)
    return EXIT_INTERNAL


def _is_dir(path: Path | None) -> bool:
    return path is not None and path.is_dir()


def _failed(args: argparse.Namespace, lines: list[str], code: int, planned_before: bool) -> int:
    """A plan that could not run: each line as `error:`, and with --json the same as diagnostics; an
    existing plan directory is left holding these errors instead of the previous run's results."""
    from roadbike.plan import record_failure
    from roadbike.report import diagnostic

    for line in lines:
        print(f"error: {line}", file=sys.stderr)
    out_dir = _out_dir(args)
    # Only a directory that was there before this run: a refused run leaves nothing it made.
    if planned_before and out_dir is not None and record_failure(args.stack, out_dir, lines):
        print(f"error: the errors are recorded in {out_dir}", file=sys.stderr)
    if args.json:
        diagnostics = [diagnostic(line) for line in lines]
        print(json.dumps({"diagnostics": diagnostics}, indent=4, sort_keys=True, ensure_ascii=False))
    return code


def _out_dir(args: argparse.Namespace) -> Path | None:
    from roadbike.plan import UsageError, find_project_dir

    if args.out is not None:
        return Path(args.out)
    try:
        return find_project_dir(Path.cwd()) / "out" / args.stack
    except UsageError:
        return None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("roadbike")
    except PackageNotFoundError:  # run from a tree that is not installed (a base revision's plan)
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # The first Ctrl-C or SIGTERM (a cancelled CI job) stops the pack processes, removes the half-written
    # plan and exits 130 at once (roadbike.interrupt).
    what = (
        "the policy pack was stopped, no partial plan was left"
        if args.command == "plan"
        else "nothing more sent"
    )
    interrupt.install(f"interrupted; {what}")
    try:
        if args.command == "plan":
            return _plan(args)
        if args.command == "verify":
            return verify.run_command(args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        return _internal_error(error)
    finally:
        # The work is done (or refused): a signal now would only kill the interpreter on its way out.
        interrupt.ignore()
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
