"""Console output that reads like `pulumi preview`: resource tree, policies, outputs, counts."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, TextIO

from roadbike.analyzer import PolicyResult, Violation
from roadbike.program import STACK_TYPE, ProgramRun, RecordedResource


def _tree_rows(run: ProgramRun) -> list[tuple[str, str, str]]:
    children: dict[str, list[RecordedResource]] = defaultdict(list)
    urns = {r.urn for r in run.resources}
    for resource in run.resources:
        parent = resource.parent if resource.parent in urns else run.stack_urn
        children[parent].append(resource)
    rows = [("", STACK_TYPE, f"{run.project}-{run.stack}")]

    def walk(urn: str, prefix: str) -> None:
        kids = children.get(urn, [])
        for position, child in enumerate(kids):
            last = position == len(kids) - 1
            rows.append((prefix + ("└─ " if last else "├─ "), child.type, child.name))
            walk(child.urn, prefix + ("   " if last else "│  "))

    walk(run.stack_urn, "")
    return rows


def print_tree(run: ProgramRun, out: TextIO) -> None:
    rows = _tree_rows(run)
    width_type = max(len(prefix) + len(kind) for prefix, kind, _ in rows) + 2
    width_name = max(len(name) for _, _, name in rows) + 2
    print(f"Previewing update ({run.stack}):", file=out)
    print(f"     {'Type':<{width_type}} {'Name':<{width_name}} Plan", file=out)
    for prefix, kind, name in rows:
        print(f" +   {prefix + kind:<{width_type}} {name:<{width_name}} create", file=out)
    print(file=out)


def _violation_lines(violation: Violation, names: dict[str, tuple[str, str]]) -> list[str]:
    kind, name = names.get(violation.urn, ("", ""))
    where = f"  ({kind}: {name})" if kind else ""
    lines = [f"        - [{violation.enforcement_level}]  {violation.policy}{where}"]
    lines.append(f"          {violation.description}")
    lines += [f"          {line}" for line in violation.detail.splitlines()]
    return lines


def print_policies(result: PolicyResult, run: ProgramRun, violations: list[Violation], out: TextIO) -> None:
    mandatory = any(v.enforcement_level in ("mandatory", "remediate") for v in violations)
    mark = "❌" if mandatory else ("⚠️ " if violations else "✅")
    print("Policies:", file=out)
    print(f"    {mark} {result.pack_name}@v{result.pack_version} (local: policies)", file=out)
    names = {r.urn: (r.type, r.name) for r in run.resources}
    by_policy: dict[str, list[Violation]] = defaultdict(list)
    for violation in violations:
        by_policy[violation.policy].append(violation)
    for policy in sorted(by_policy):
        for violation in by_policy[policy]:
            for line in _violation_lines(violation, names):
                print(line, file=out)
    print(file=out)


def _format_output(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, dict):
        lines = []
        for key in sorted(value):
            inner = value[key]
            if isinstance(inner, (dict, list)) and inner:
                lines.append(f"{pad}{key}: {'{' if isinstance(inner, dict) else '['}")
                lines += _format_output(inner, indent + 4)
                lines.append(f"{pad}{'}' if isinstance(inner, dict) else ']'}")
            else:
                lines.append(f"{pad}{key}: {json.dumps(inner, ensure_ascii=False)}")
        return lines
    if isinstance(value, list):
        lines = []
        for item in value:
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{'{' if isinstance(item, dict) else '['}")
                lines += _format_output(item, indent + 4)
                lines.append(f"{pad}{'}' if isinstance(item, dict) else ']'}")
            else:
                lines.append(f"{pad}{json.dumps(item, ensure_ascii=False)}")
        return lines
    return [f"{pad}{json.dumps(value, ensure_ascii=False)}"]


def print_outputs(run: ProgramRun, out: TextIO) -> None:
    print("Outputs:", file=out)
    for line in _format_output(run.outputs, 4):
        print(line, file=out)
    print(file=out)


def print_summary(
    run: ProgramRun, violations: list[Violation], out_dir: str, seconds: float, out: TextIO
) -> None:
    mandatory = sum(1 for v in violations if v.enforcement_level in ("mandatory", "remediate"))
    advisory = sum(1 for v in violations if v.enforcement_level == "advisory")
    print("Resources:", file=out)
    print(f"    + {len(run.resources) + 1} to create", file=out)
    print(file=out)
    print(f"Policy violations: {mandatory} mandatory, {advisory} advisory", file=out)
    print(f"Plan written to {out_dir}", file=out)
    print(f"Duration: {seconds:.1f}s", file=out)
