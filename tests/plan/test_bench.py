"""make bench's targets: each figure checked against its target, a miss is exit 1 (no fleet is planned here)."""

from __future__ import annotations

from typing import Any

from bench.plan_bench import exit_code, verdicts


def _fleet(
    services: int, plan: float, floor: float, plan_mib: float = 300, packs_mib: float = 200
) -> dict[str, Any]:
    return {
        "services": services,
        "plan_seconds": plan,
        "floor_seconds": floor,
        "plan_to_floor": round(plan / floor, 2),
        "plan_mib": plan_mib,
        "packs_mib": packs_mib,
    }


def _preview(services: int, preview: float, plan: float) -> dict[str, Any]:
    return {
        "services": services,
        "preview_seconds": preview,
        "plan_seconds": plan,
        "preview_to_plan": preview / plan,
    }


def _met(found: list[Any]) -> dict[str, bool | None]:
    return {v.target: v.met for v in found}


def test_every_target_met_is_exit_0() -> None:
    fleets = {n: _fleet(n, 0.09 * n + 0.5, 0.08 * n + 0.4) for n in (1, 10, 100, 300)}
    previews = {n: _preview(n, 20.0 * n, 0.09 * n + 0.5) for n in (10, 100)}
    found = verdicts(fleets, previews)
    assert all(v.met is True for v in found), [v.line() for v in found]
    assert len(found) == 1 + 3 + 1 + 2 + 2  # 100 s; floor at 10, 100, 300; growth; 2 previews; 2 memories
    assert exit_code(found) == 0


def test_each_missed_target_is_named_and_fails_the_run() -> None:
    fleets = {
        10: _fleet(10, 1.4, 1.0),  # 1.4x its floor
        100: _fleet(100, 12.0, 11.0),  # over 10 s
        300: _fleet(300, 40.0, 33.0, plan_mib=510, packs_mib=499),  # 1.11x per service; 510 MiB
    }
    previews = {100: _preview(100, 100.0, 12.0)}  # 8.3x
    met = _met(verdicts(fleets, previews))
    assert met["100 services planned in under 10 s"] is False
    assert met["10 services: the plan at most 1.3x its floor"] is False
    assert met["100 services: the plan at most 1.3x its floor"] is True
    assert met["time per service at 300 at most 1.1x that at 100"] is False
    assert met["100 services: the plan at least 10x faster than pulumi preview"] is False
    assert met["300 services: peak memory of the plan under 500 MiB"] is False
    assert met["300 services: peak memory of all pack processes under 500 MiB"] is True
    assert exit_code(verdicts(fleets, previews)) == 1


def test_a_fleet_not_measured_fails_nothing() -> None:
    found = verdicts({1: _fleet(1, 3.0, 1.0)}, {})
    assert {v.met for v in found} == {None}  # a 1-service fleet checks no target
    assert exit_code(found) == 0


def test_the_plans_memory_is_shown_beside_its_floors() -> None:
    fleets = {300: {**_fleet(300, 40.0, 33.0, plan_mib=835), "floor_mib": 661.0}}
    lines = {v.target: v.line() for v in verdicts(fleets, {})}
    assert lines["300 services: peak memory of the plan under 500 MiB"].endswith("835 MiB (floor: 661 MiB)")
    assert lines["300 services: peak memory of all pack processes under 500 MiB"].endswith(": 200 MiB")
