"""Ctrl-C and SIGTERM at random points of a 60-service plan (bench/interrupts.py; `make bench-interrupts`
runs 100): every run ends within 5 s with exit 130 (or had finished), no pack process left, no partial
plan directory, no traceback or asyncio noise."""

from __future__ import annotations

import json

import pytest

from bench.interrupts import run


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
