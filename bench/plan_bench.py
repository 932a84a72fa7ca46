"""`make bench`: roadbike plan on synthetic fleets, against its floor and against the real `pulumi preview`.

For each fleet (1, 10, 100 and 300 services by default) it measures, each in a fresh process:

- the whole plan (`run_plan`: config, program under the mock monitor, the pack over gRPC, every file
  written), from the first line of its process to the last, with the peak memory of that process and of
  its pack processes (VmHWM, read just before the packs are stopped);
- the floor: the same resources with the same inputs registered by a minimal program under the bare mock
  monitor (bench/floor.py), timed the same way, with its peak memory: what the SDK itself costs;
- for the preview fleets (10 and 100 by default), the real `pulumi preview --policy-pack policies` of the
  fleet with the engine built for the tests (offline: file backend, passphrase, plugin downloads off;
  `roadbike:github.enabled: false`, since no pulumi-github provider is built), and the plan of that very
  stack file.

Then each target of the benchmark with the figure it checks; exit 1 when one is missed. Options:
`--fleets 1,10`, `--preview-fleets 10` (or `none`). A target whose figure was not measured is reported as
not checked and does not fail the run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STARTED = time.perf_counter()
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FLEETS = (1, 10, 100, 300)
PREVIEW_FLEETS = (10, 100)
TARGET_SECONDS_100 = 10.0
TARGET_FLOOR_RATIO = 1.3
TARGET_GROWTH = 1.1
TARGET_PREVIEW_SPEEDUP = 10.0
TARGET_MIB_300 = 500.0


@dataclass(frozen=True)
class Verdict:
    target: str
    figure: str
    met: bool | None  # None: not measured in this run

    def line(self) -> str:
        mark = {True: "met   ", False: "MISSED", None: "n/a   "}[self.met]
        return f"  [{mark}] {self.target}: {self.figure}"


def peak_mib(pid: int | str = "self") -> float:
    """The peak resident memory of a running process (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure_plan(stack_path: Path, resources_path: Path | None) -> dict[str, Any]:
    """One plan in this process (run by `--plan`): figures, and the recorded resources for the floor."""
    import io

    import roadbike.analyzer as analyzer
    import roadbike.plan as plan

    packs_mib: dict[int, float] = {}
    stop_all = analyzer.stop_all

    def measured_stop_all(packs: Any, grace: float = 3.0) -> None:
        for pack in packs:
            if pack.process is not None and pack.process.poll() is None:
                packs_mib[pack.process.pid] = peak_mib(pack.process.pid)
        stop_all(packs, grace)

    analyzer.stop_all = measured_stop_all
    recorded: list[Any] = []
    run_program = plan.run_program

    def recording_run_program(*args: Any, **kwargs: Any) -> Any:
        recorded.append(run_program(*args, **kwargs))
        return recorded[-1]

    plan.run_program = recording_run_program  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as work:
        options = plan.PlanOptions(
            stack="bench", project_dir=REPO, config_file=stack_path, out_dir=Path(work) / "out"
        )
        result = plan.run_plan(options, err=io.StringIO())
    seconds = time.perf_counter() - STARTED
    figures = {
        "resources": len(result.run.resources),
        "plan_seconds": round(seconds, 3),
        "program_seconds": round(result.seconds_program, 3),
        "policy_tail_seconds": round(result.seconds_policy, 3),
        "plan_mib": round(peak_mib(), 1),
        "pack_processes": len(packs_mib),
        "packs_mib": round(sum(packs_mib.values()), 1),
        "mandatory_violations": sum(
            1 for v in result.policy.violations if v.enforcement_level == "mandatory"
        ),
    }
    if resources_path is not None:
        from bench.floor import write_resources

        write_resources(recorded[0], resources_path)
    return figures


def _child(args: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True, check=False, timeout=3600
    )
    if done.returncode != 0:
        raise SystemExit(f"bench: {' '.join(args)} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def measure_fleet(services: int, work: Path) -> dict[str, Any]:
    from bench.fleet import write_fleet

    stack_path = write_fleet(work / f"Pulumi.fleet{services}.yaml", services)
    resources = work / f"resources-{services}.json"
    figures = {"services": services, **_child([__file__, "--plan", str(stack_path), str(resources)])}
    floor = _child([str(REPO / "bench" / "floor.py"), "run", str(resources)])
    figures["floor_seconds"] = floor["seconds"]
    figures["floor_mib"] = floor["peak_mib"]
    figures["plan_to_floor"] = round(figures["plan_seconds"] / floor["seconds"], 2)
    return figures


def measure_preview(services: int, work: Path) -> dict[str, Any]:
    from bench.fleet import write_fleet
    from tests.engine.real_engine import real_preview

    stack = f"cluster{services}"
    stack_path = write_fleet(work / f"Pulumi.{stack}.yaml", services, github=False)
    preview = real_preview(stack, work / f"engine-{services}", stack_path)
    if preview.returncode != 0:
        raise SystemExit(f"bench: pulumi preview of {services} services failed:\n{preview.output[-3000:]}")
    plan = _child([__file__, "--plan", str(preview.stack_file), ""])
    return {
        "services": services,
        "resources": len(preview.resources()),
        "preview_seconds": round(preview.seconds, 3),
        "plan_seconds": plan["plan_seconds"],
        "preview_to_plan": round(preview.seconds / plan["plan_seconds"], 1),
    }


def verdicts(fleets: dict[int, dict[str, Any]], previews: dict[int, dict[str, Any]]) -> list[Verdict]:
    """Every target of the benchmark with the figure it checks (pure: tests/plan/test_bench.py)."""
    found = []
    hundred = fleets.get(100)
    found.append(
        Verdict(
            f"100 services planned in under {TARGET_SECONDS_100:g} s",
            f"{hundred['plan_seconds']:.1f} s" if hundred else "100 services not measured",
            hundred["plan_seconds"] < TARGET_SECONDS_100 if hundred else None,
        )
    )
    for services, line in sorted(fleets.items()):
        if services >= 10:
            found.append(
                Verdict(
                    f"{services} services: the plan at most {TARGET_FLOOR_RATIO:g}x its floor",
                    f"{line['plan_to_floor']:.2f}x ({line['plan_seconds']:.1f} s vs {line['floor_seconds']:.1f} s)",
                    line["plan_to_floor"] <= TARGET_FLOOR_RATIO,
                )
            )
    if 100 in fleets and 300 in fleets:
        per = [fleets[n]["plan_seconds"] / n for n in (100, 300)]
        found.append(
            Verdict(
                f"time per service at 300 at most {TARGET_GROWTH:g}x that at 100",
                f"{per[1] / per[0]:.2f}x ({per[0]:.3f} s vs {per[1]:.3f} s per service)",
                per[1] <= per[0] * TARGET_GROWTH,
            )
        )
    else:
        found.append(
            Verdict(f"time per service at 300 at most {TARGET_GROWTH:g}x that at 100", "not measured", None)
        )
    for services, line in sorted(previews.items()):
        found.append(
            Verdict(
                f"{services} services: the plan at least {TARGET_PREVIEW_SPEEDUP:g}x faster than pulumi preview",
                f"{line['preview_to_plan']:.1f}x ({line['preview_seconds']:.1f} s vs {line['plan_seconds']:.1f} s)",
                line["preview_to_plan"] >= TARGET_PREVIEW_SPEEDUP,
            )
        )
    if not previews:
        found.append(Verdict("the plan at least 10x faster than pulumi preview", "not measured", None))
    big = fleets.get(300)
    for what, key in (("the plan", "plan_mib"), ("all pack processes", "packs_mib")):
        found.append(
            Verdict(
                f"300 services: peak memory of {what} under {TARGET_MIB_300:g} MiB",
                _memory_figure(big, key) if big else "300 services not measured",
                big[key] < TARGET_MIB_300 if big else None,
            )
        )
    return found


def _memory_figure(line: dict[str, Any], key: str) -> str:
    """The peak, and for the plan the floor's (the SDK alone holding the same resources) beside it."""
    floor = f" (floor: {line['floor_mib']:.0f} MiB)" if key == "plan_mib" and "floor_mib" in line else ""
    return f"{line[key]:.0f} MiB{floor}"


def _sizes(text: str) -> tuple[int, ...]:
    return () if text == "none" else tuple(int(n) for n in text.split(","))


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "--plan":
        print(json.dumps(measure_plan(Path(argv[1]), Path(argv[2]) if argv[2] else None)), flush=True)
        return 0
    parser = argparse.ArgumentParser(prog="plan_bench.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fleets", type=_sizes, default=FLEETS, help="services per fleet, e.g. 1,10,100,300")
    parser.add_argument("--preview-fleets", type=_sizes, default=PREVIEW_FLEETS, help="e.g. 10,100 or none")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    print(
        f"bench: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True
    )
    fleets: dict[int, dict[str, Any]] = {}
    previews: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="roadbike-bench-") as scratch:
        work = Path(scratch)
        for services in args.fleets:
            fleets[services] = measure_fleet(services, work)
            print(json.dumps(fleets[services]), flush=True)
        for services in args.preview_fleets:
            previews[services] = measure_preview(services, work)
            print(json.dumps(previews[services]), flush=True)
    found = verdicts(fleets, previews)
    load = os.getloadavg()
    print(f"targets (load average now {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}):")
    for verdict in found:
        print(verdict.line())
    met, missed = (sum(1 for v in found if v.met is state) for state in (True, False))
    print(f"bench: {met} met, {missed} missed, {time.perf_counter() - STARTED:.0f} s")
    return exit_code(found)


def exit_code(found: list[Verdict]) -> int:
    """1 when a target is missed; a target not measured in this run fails nothing."""
    return 1 if any(v.met is False for v in found) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
