"""The program runs under the SDK's machinery as it ships, but for steps the plan does more cheaply: each
must hand the monitor exactly what the SDK's own step would."""

from __future__ import annotations

import gc
import io
import sys
import weakref
from pathlib import Path
from typing import Any

import pytest
from pulumi.runtime import resource as sdk_resource

import roadbike.plan as plan
import roadbike.program as program
from roadbike import interpreter
from roadbike.program import RecordingMonitor
from tests.helpers import REPO, run_raw, stack_raw


def _positions(monkeypatch: pytest.MonkeyPatch, stack: str) -> dict[str, tuple[bytes, bytes]]:
    """Each resource's source position and stack trace as the monitor received them."""
    seen: dict[str, tuple[bytes, bytes]] = {}

    class Watching(RecordingMonitor):
        def RegisterResource(self, request: Any) -> Any:
            response = super().RegisterResource(request)
            seen[response.urn] = (
                request.sourcePosition.SerializeToString(deterministic=True),
                request.stackTrace.SerializeToString(deterministic=True),
            )
            return response

    monkeypatch.setattr(program, "RecordingMonitor", Watching)
    run_raw(stack_raw(stack), stack="test")
    return seen


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stack_traces_are_the_sdks_own(monkeypatch: pytest.MonkeyPatch, stack: str) -> None:
    shipped = sdk_resource._get_stack_trace
    seen = []
    for stack_trace in (program._stack_trace, shipped):  # one call site: the test's own frames are equal
        monkeypatch.setattr(program, "_stack_trace", stack_trace)
        seen.append(_positions(monkeypatch, stack))
        assert sdk_resource._get_stack_trace is shipped  # put back after the run
    ours, stock = seen
    assert ours == stock
    traced = [trace for _, trace in stock.values() if trace]
    assert len(traced) > len(stock) // 2, (
        "most resources should carry a stack trace, or this compares nothing"
    )


def test_the_plan_runs_without_cyclic_collection_and_puts_the_interpreter_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[tuple[bool, float]] = []
    real = plan.run_program

    def watched(*args: Any, **kwargs: Any) -> Any:
        seen.append((gc.isenabled(), sys.getswitchinterval()))
        return real(*args, **kwargs)

    monkeypatch.setattr(plan, "run_program", watched)
    interval = sys.getswitchinterval()
    assert gc.isenabled()
    options = plan.PlanOptions(stack="dev", project_dir=REPO, out_dir=tmp_path / "out")
    plan.run_plan(options, err=io.StringIO())
    assert seen == [(False, interpreter.SWITCH_INTERVAL_SECONDS)]
    assert gc.isenabled() and sys.getswitchinterval() == interval


def test_what_the_block_allocated_is_not_left_to_one_young_collection() -> None:
    young_at_collections: list[int] = []

    def count_young(phase: str, info: dict[str, int]) -> None:  # what a young collection scans
        if phase == "start" and info["generation"] < 2:
            young_at_collections.append(
                sum(len(gc.get_objects(generation=g)) for g in range(info["generation"] + 1))
            )

    kept: list[list[int]] = []
    gc.callbacks.append(count_young)
    try:
        with interpreter.batch_interpreter():
            kept.extend([index] for index in range(200_000))
            cycle: list[Any] = []
            cycle.append(cycle)
            marker = weakref.ref(_Node(cycle))
        kept.extend([index] for index in range(10_000))  # the collector's next young collections
    finally:
        gc.callbacks.remove(count_young)
    assert young_at_collections and max(young_at_collections) < 20_000, young_at_collections[:3]
    assert gc.get_freeze_count() == 0
    del cycle
    gc.collect()
    assert marker() is None  # still collectable


def test_objects_frozen_before_the_block_stay_frozen() -> None:
    kept: list[Any] = []  # a container the collector tracks, frozen below
    gc.freeze()
    try:
        with interpreter.batch_interpreter():
            pass
        assert gc.get_freeze_count() > 0
        assert not any(tracked is kept for tracked in gc.get_objects()), "released from the freeze"
    finally:
        gc.unfreeze()


class _Node:
    def __init__(self, value: Any) -> None:
        self.value = value
        self.itself = self


def test_a_collector_already_off_stays_off() -> None:
    gc.disable()
    try:
        with interpreter.batch_interpreter():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
