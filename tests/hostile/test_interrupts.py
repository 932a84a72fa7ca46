"""Ctrl-C and SIGTERM at random points of a 60-service plan (bench/interrupts.py; `make bench-interrupts`
runs 100): every run ends within 5 s with exit 130 (or had finished), no pack process left, no partial
plan directory, no traceback or asyncio noise."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.interrupts import run
from tests.helpers import REPO


@pytest.mark.slow
def test_twenty_interrupts_at_random_points_of_a_60_service_plan() -> None:
    figures = run(count=20, services=60, seed=13)
    detail = json.dumps(figures, indent=1)
    assert figures["hangs"] == 0, detail
    assert figures["orphaned_processes"] == 0, detail
    assert figures["noisy_stderr"] == 0, detail
    assert figures["partial_out"] == 0, detail
    assert figures["bad"] == [], detail
    assert figures["exit_130"] >= 10, detail  # most signals land while the plan still runs


SPY_FIRST_INSTALL = """
import json, sys
from importlib.metadata import entry_points
from roadbike import interrupt, launch

install, seen = interrupt.install, []
def spy(message):
    seen.append(sorted(m for m in ("pulumi", "grpc", "components", "roadbike.cli") if m in sys.modules))
    install(message)
interrupt.install = spy
sys.argv = ["roadbike", "--version"]
try:
    launch.main()
except SystemExit:
    pass
[script] = [e.value for e in entry_points(group="console_scripts") if e.name == "roadbike"]
print(json.dumps({"first_install_saw": seen[0], "script": script}))
"""


def test_the_signals_are_taken_over_before_the_heavy_imports() -> None:
    """A SIGTERM while the SDK and gRPC still import (the first few tenths of a second) ends with exit 130
    like any other: the entry point installs the handlers before it imports the command."""
    result = subprocess.run(
        [sys.executable, "-c", SPY_FIRST_INSTALL], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report == {"first_install_saw": [], "script": "roadbike.launch:main"}, report
