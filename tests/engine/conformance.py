"""Holding `roadbike plan` to the real `pulumi preview` of the same stack: what must agree, as problems."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.engine.real_engine import Preview

MANDATORY = ("mandatory", "remediate")


def plan_resources(plan_dir: Path) -> dict[str, tuple[str, str]]:
    document = json.loads((plan_dir / "plan.json").read_text())
    return {r["urn"]: (r["type"], r["parent"]) for r in document["resources"]}


def preview_resources(preview: Preview) -> dict[str, tuple[str, str]]:
    return {urn: (state["type"], state.get("parent", "")) for urn, state in preview.resources().items()}


SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"  # the engine's marker of a secret value


def key_paths(value: Any, prefix: str = "") -> Iterator[str]:
    """Every key path of a document, a secret (as the engine marks it) being one value."""
    if isinstance(value, dict) and value and SECRET_SIG_KEY not in value:
        for key, inner in value.items():
            yield from key_paths(inner, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix


def plan_violations(plan_dir: Path) -> set[tuple[str, str]]:
    report = json.loads((plan_dir / "policy" / "report.json").read_text())
    return {(v["policy"], v["urn"]) for v in report["violations"] if v["enforcementLevel"] in MANDATORY}


NOT_RUN = "during preview"  # the policy SDK's "can't run policy ... during preview" diagnostic


def plan_not_applicable(plan_dir: Path) -> set[str]:
    report = json.loads((plan_dir / "policy" / "report.json").read_text())
    skipped = {v["policy"] for v in report["violations"] if NOT_RUN in v["message"]}
    return skipped | {p["name"] for p in report["policies"] if p["notApplicable"]}


def conformance_problems(preview: Preview, plan_dir: Path) -> list[str]:
    """Every way the plan differs from the preview: resources (URN, type, parent), output keys,
    mandatory violations (policy, URN), and the policies reported as not run during preview."""
    problems: list[str] = []
    planned, previewed = plan_resources(plan_dir), preview_resources(preview)
    problems += [f"only in the plan: {urn}" for urn in sorted(set(planned) - set(previewed))]
    problems += [f"only in the preview: {urn}" for urn in sorted(set(previewed) - set(planned))]
    for urn in sorted(set(planned) & set(previewed)):
        if planned[urn] != previewed[urn]:
            problems.append(f"{urn}: plan has (type, parent) {planned[urn]}, preview {previewed[urn]}")
    plan_outputs = json.loads((plan_dir / "plan.json").read_text())["outputs"]
    planned_keys, previewed_keys = set(key_paths(plan_outputs)), set(key_paths(preview.outputs()))
    problems += [f"output only in the plan: {k}" for k in sorted(planned_keys - previewed_keys)]
    problems += [f"output only in the preview: {k}" for k in sorted(previewed_keys - planned_keys)]
    engine_violations = {(p, urn) for p, level, urn in preview.violations() if level in MANDATORY}
    problems += [
        f"violation only in the plan: {v}" for v in sorted(plan_violations(plan_dir) - engine_violations)
    ]
    problems += [
        f"violation only in the preview: {v}" for v in sorted(engine_violations - plan_violations(plan_dir))
    ]
    skipped_plan, skipped_engine = plan_not_applicable(plan_dir), preview.not_applicable(NOT_RUN)
    problems += [f"not run only in the plan: {p}" for p in sorted(skipped_plan - skipped_engine)]
    problems += [f"not run only in the preview: {p}" for p in sorted(skipped_engine - skipped_plan)]
    return problems


# What the pack received: (call, URN) -> properties, from the files policies/recorder.py writes.
Received = dict[tuple[str, str], dict[str, Any]]


def received(record: Path) -> Received:
    found: Received = {}
    for path in sorted(record.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            key = (entry["call"], entry["urn"])
            assert key not in found, f"{key} received twice"
            found[key] = entry["properties"]
    return found


def _differences(plan: Any, engine: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(key path, how) wherever the two property values differ."""
    if isinstance(plan, dict) and isinstance(engine, dict):
        for key in sorted(set(plan) | set(engine)):
            inner = f"{path}.{key}" if path else key
            if key not in engine:
                yield inner, "only in the plan"
            elif key not in plan:
                yield inner, "only in the preview"
            else:
                yield from _differences(plan[key], engine[key], inner)
    elif isinstance(plan, list) and isinstance(engine, list) and len(plan) == len(engine):
        for index, (a, b) in enumerate(zip(plan, engine, strict=True)):
            yield from _differences(a, b, f"{path}[{index}]")
    elif plan != engine:
        yield path, f"plan {json.dumps(plan)[:120]}, preview {json.dumps(engine)[:120]}"


def resource_key(urn: str) -> str:
    """`type::name` of a URN (its own type, without its parents')."""
    parts = urn.split("::")
    return parts[2].rsplit("$", 1)[-1] + "::" + parts[-1]


# A difference: (call, the resource's type and name, key path).
Difference = tuple[str, str, str]


def received_differences(plan: Received, engine: Received) -> dict[Difference, str]:
    """Every way the properties the pack received from the plan differ from the preview's, per call and URN:
    a resource analysed on one side only (key path "") or a property that differs."""
    found: dict[Difference, str] = {}
    for call, urn in sorted(set(plan) | set(engine)):
        name = resource_key(urn)
        if (call, urn) not in engine:
            found[(call, name, "")] = f"{urn} only in the plan"
        elif (call, urn) not in plan:
            found[(call, name, "")] = f"{urn} only in the preview"
        else:
            for path, how in _differences(plan[(call, urn)], engine[(call, urn)]):
                found[(call, name, path)] = f"{urn}: {how}"
    return found
