"""Ctrl-C and SIGTERM at random points of a plan of a synthetic fleet: every run must end with exit 130
(or have finished first) within 5 seconds of the signal, leave no pack process behind, no partial plan
directory, no traceback or asyncio noise on stderr.

`python bench/interrupts.py [N] [SERVICES]` (make bench-interrupts: 100 interrupts of a 60-service plan)
prints one JSON line of figures; tests/hostile/test_interrupts.py runs 20 of them.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fleet import REPO, write_fleet

MARK = "ROADBIKE_INTERRUPT_RUN"
GRACE_SECONDS = 5.0
REAP_SECONDS = 0.2
NOISE = ("Traceback", "Task was destroyed", "Exception ignored", "Task exception was never retrieved")


def _marked(mark: str) -> list[int]:
    """Processes still alive whose environment carries the run's mark (the plan's packs inherit it)."""
    found = []
    needle = f"{MARK}={mark}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def _left_behind(mark: str, seconds: float = REAP_SECONDS) -> list[int]:
    """The marked processes still alive `seconds` after the plan exited (a pack the plan killed needs a
    moment to be reaped by init); an empty answer as soon as there is none."""
    end = time.monotonic() + seconds
    while (found := _marked(mark)) and time.monotonic() < end:
        time.sleep(0.01)
    return found


def _roadbike() -> str:
    return str(Path(sys.executable).parent / "roadbike")


def plan_once(stack: Path, out: Path, delay: float | None, signum: int) -> dict[str, Any]:
    mark = uuid.uuid4().hex
    started = time.monotonic()
    process = subprocess.Popen(
        [_roadbike(), "plan", "--stack", "fleet", "--config-file", str(stack), "--out", str(out)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, MARK: mark},
    )
    hung = False
    if delay is not None:
        time.sleep(delay)
        process.send_signal(signum)
        signalled = time.monotonic()
        try:
            _, err = process.communicate(timeout=GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            hung = True
            process.kill()
            _, err = process.communicate()
        stop_seconds = time.monotonic() - signalled
    else:
        _, err = process.communicate(timeout=600)
        stop_seconds = 0.0
    orphans = _left_behind(mark)
    for pid in orphans:
        with __import__("contextlib").suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    text = err.decode(errors="replace")
    leftovers = sorted(p.name for p in out.parent.iterdir() if ".roadbike-" in p.name)
    complete = (out / ".roadbike-plan.json").is_file()
    return {
        "code": process.returncode,
        "seconds": time.monotonic() - started,
        "stop_seconds": stop_seconds,
        "hung": hung,
        "orphans": len(orphans),
        "noise": [n for n in NOISE if n in text],
        "partial": out.exists() and not complete,
        "complete": complete,
        "leftovers": leftovers,
        "stderr": text[-2000:],
    }


def run(count: int, services: int = 60, seed: int = 13) -> dict[str, Any]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="roadbike-interrupts-") as work:
        stack = write_fleet(Path(work) / "Pulumi.fleet.yaml", services)
        baseline = plan_once(stack, Path(work) / "baseline" / "out", None, signal.SIGINT)
        assert baseline["code"] in (0, 1), baseline["stderr"]
        total = baseline["seconds"]
        runs = []
        for index in range(count):
            out = Path(work) / f"run-{index}" / "out"
            out.parent.mkdir()
            delay = rng.uniform(0.0, total * 1.05)
            signum = rng.choice((signal.SIGINT, signal.SIGTERM))
            result = plan_once(stack, out, delay, signum)
            result.update(delay=round(delay, 3), signal=signal.Signals(signum).name)
            runs.append(result)
    interrupted = [r for r in runs if r["code"] == 130]
    bad = [
        r
        for r in runs
        if r["hung"]
        or r["orphans"]
        or r["noise"]
        or r["partial"]
        or r["leftovers"]
        or r["code"] not in (0, 1, 130)
    ]
    return {
        "services": services,
        "plan_seconds": round(total, 2),
        "interrupts": count,
        "exit_130": len(interrupted),
        "finished_first": count - len(interrupted),
        "hangs": sum(r["hung"] for r in runs),
        "orphaned_processes": sum(r["orphans"] for r in runs),
        "noisy_stderr": sum(bool(r["noise"]) for r in runs),
        "partial_out": sum(r["partial"] for r in runs),
        "max_stop_seconds": round(max((r["stop_seconds"] for r in runs), default=0.0), 2),
        "bad": [{k: v for k, v in r.items()} for r in bad[:5]],
    }


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    services = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    figures = run(count, services)
    print(json.dumps({k: v for k, v in figures.items() if k != "bad"}))
    for item in figures["bad"]:
        print(json.dumps(item), file=sys.stderr)
    sys.exit(1 if figures["bad"] else 0)
