"""Console output that reads like `pulumi preview`: resource tree, diffs, policies, outputs, counts.

Type tokens are shown as the Pulumi CLI shows them (`github:index:RepositoryFile`); rows are in a stable
order (each resource's children by type, then name); lines fit the terminal's width (`COLUMNS`); colour
only on a terminal, and never when `NO_COLOR` is set.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from roadbike.analyzer import PolicyResult, Violation
from roadbike.base import Base
from roadbike.diff import SYMBOLS, ChangeSet, PropertyChange, Step, top_level
from roadbike.program import STACK_TYPE, ProgramRun

COLOURS = {"create": "32", "update": "33", "delete": "31", "replace": "35", "error": "31", "bold": "1"}
MIN_TYPE_WIDTH = 24
MIN_NAME_WIDTH = 16
ELLIPSIS = "…"


@dataclass(frozen=True)
class Style:
    colour: bool = False
    width: int = 0  # 0: lines are never cut

    @classmethod
    def for_stream(cls, out: TextIO) -> Style:
        terminal = bool(getattr(out, "isatty", lambda: False)())
        colour = terminal and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        width = 0
        if os.environ.get("COLUMNS", "").isdigit():
            width = int(os.environ["COLUMNS"])
        elif terminal:
            width = shutil.get_terminal_size().columns
        return cls(colour, width)

    def paint(self, text: str, what: str) -> str:
        code = COLOURS.get(what)
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour and code and text else text


class Progress:
    """A line on standard error every few seconds while a long fleet registers: how far it got."""

    def __init__(self, err: TextIO, every_seconds: float = 2.0) -> None:
        self.err, self.every = err, every_seconds
        self.count, self.started = 0, time.monotonic()
        self.last = self.started
        self.lock = threading.Lock()

    def resource(self, _resource: object) -> None:
        with self.lock:
            self.count += 1
            now = time.monotonic()
            if now - self.last >= self.every:
                self.last = now
                noun = "resource" if self.count == 1 else "resources"
                elapsed = now - self.started
                print(f"    {self.count} {noun} registered ({elapsed:.0f}s)", file=self.err, flush=True)


def display_type(token: str) -> str:
    """The Pulumi CLI's display of a type token: `pkg:mod/res:Res` becomes `pkg:mod:Res`."""
    parts = token.split(":")
    if len(parts) != 3 or not parts[2] or "/" not in parts[1]:
        return token
    module, _, file = parts[1].rpartition("/")
    if file != parts[2][:1].lower() + parts[2][1:]:
        return token
    return f"{parts[0]}:{module}:{parts[2]}"


def _visible(changes: ChangeSet, parents: dict[str, str]) -> set[str]:
    """The steps the tree shows: every change and its ancestors (unchanged resources are counted)."""
    shown = {changes.steps[0].urn} if changes.steps else set()
    for step in changes.changed():
        urn = step.urn
        while urn and urn not in shown:
            shown.add(urn)
            urn = parents.get(urn, "")
    return shown


def _diff_info(step: Step) -> str:
    if step.op not in ("update", "replace"):
        return ""
    marks = []
    for key in step.diff_reasons:
        kinds = {c.kind for c in step.changes if c.path == key}
        whole = [c for c in step.changes if top_level(c.path) == key]
        if kinds == {"add"} and len(whole) == 1:
            marks.append(f"+{key}")
        elif kinds == {"delete"} and len(whole) == 1:
            marks.append(f"-{key}")
        else:
            marks.append(f"~{key}")
    return f"[diff: {' '.join(marks)}]"


def _tree_rows(changes: ChangeSet) -> list[tuple[Step, str]]:
    steps = {step.urn: step for step in changes.steps}
    if not changes.steps:
        return []
    stack = changes.steps[0]
    parents = {
        urn: (s.parent if s.parent in steps else stack.urn) for urn, s in steps.items() if urn != stack.urn
    }
    shown = _visible(changes, parents)
    children: dict[str, list[Step]] = defaultdict(list)
    for urn, parent in parents.items():
        if urn in shown:
            children[parent].append(steps[urn])
    rows = [(stack, "")]

    def walk(urn: str, prefix: str) -> None:
        kids = sorted(children.get(urn, []), key=lambda s: (s.type, s.name, s.urn))
        for position, child in enumerate(kids):
            last = position == len(kids) - 1
            rows.append((child, prefix + ("└─ " if last else "├─ ")))
            walk(child.urn, prefix + ("   " if last else "│  "))

    walk(stack.urn, "")
    return rows


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + ELLIPSIS


def _column_widths(cells: list[tuple[str, str, str, str]], width: int) -> tuple[int, int, int]:
    type_width = max(len(c[0]) for c in cells) + 1
    name_width = max(len(c[1]) for c in cells) + 1
    plan_width = max(len(c[2]) for c in cells) + 1
    if width:
        info = max(len(c[3]) for c in cells)
        excess = 5 + type_width + 1 + name_width + 1 + plan_width + info - width
        if excess > 0:
            cut = min(excess, max(type_width - MIN_TYPE_WIDTH, 0))
            type_width, excess = type_width - cut, excess - cut
        if excess > 0:
            name_width -= min(excess, max(name_width - MIN_NAME_WIDTH, 0))
    return type_width, name_width, plan_width


def print_tree(run: ProgramRun, changes: ChangeSet, out: TextIO, style: Style | None = None) -> None:
    style = style or Style()
    rows = _tree_rows(changes)
    cells = [
        (prefix + display_type(step.type), step.name, step.op if step.op != "same" else "", _diff_info(step))
        for step, prefix in rows
    ]
    header = ("Type", "Name", "Plan", "Info" if any(c[3] for c in cells) else "")
    type_width, name_width, plan_width = _column_widths([header, *cells], style.width)
    print(f"Previewing update ({run.stack}):", file=out)
    for (step, _), cell in zip([(None, ""), *rows], [header, *cells], strict=True):
        op = step.op if step else ""
        symbol = f"{SYMBOLS.get(op, ''):<3}"
        name_cell = _cut(cell[1], name_width - 1).ljust(name_width)
        columns = f"{_cut(cell[0], type_width - 1):<{type_width}} {name_cell} "
        plain = f" {symbol} {columns}{cell[2].ljust(plan_width)}{cell[3]}".rstrip()
        if style.width and len(plain) > style.width:
            print(_cut(plain, style.width), file=out)
        else:
            padding = " " * (plan_width - len(cell[2]))
            line = f" {style.paint(symbol, op)} {columns}{style.paint(cell[2], op)}{padding}{cell[3]}"
            print(line.rstrip(), file=out)
    print(file=out)


def print_base(base: Base | None, out: TextIO) -> None:
    if base is None:
        return
    if base.resources is None:
        print(f"warning: the base {base.label} does not plan; every resource is shown as created:", file=out)
    else:
        print(f"Comparing with the base {base.label}", file=out)
    for problem in base.problems:
        print(f"    {problem}", file=out)
    print(file=out)


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _change_lines(change: PropertyChange, marker: str, indent: str) -> list[str]:
    if change.kind == "add":
        return [f"{indent}+ {change.path}: {_value(change.new)}"]
    if change.kind == "delete":
        return [f"{indent}- {change.path}: {_value(change.old)}"]
    old, new = change.old, change.new
    if isinstance(old, str) and isinstance(new, str) and ("\n" in old or "\n" in new):
        body = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=2)
        return [f"{indent}{marker} {change.path}:"] + [f"{indent}    {line}" for line in list(body)[2:]]
    return [f"{indent}{marker} {change.path}: {_value(old)} => {_value(new)}"]


def print_diff(changes: ChangeSet, out: TextIO, style: Style | None = None) -> None:
    """Property-level old and new values of every change, like `pulumi preview --diff`."""
    style = style or Style()
    for step in changes.changed():
        if step.type == STACK_TYPE:
            continue
        symbol = SYMBOLS[step.op]
        print(style.paint(f"  {symbol} {display_type(step.type)}: ({step.op})", step.op), file=out)
        print(f"        [urn={step.urn}]", file=out)
        for change in step.changes:
            marker = "+-" if top_level(change.path) in step.replace_reasons else "~"
            for line in _change_lines(change, marker, "      "):
                print(line, file=out)
    print(file=out)


def _violation_lines(violation: Violation, names: dict[str, tuple[str, str]]) -> list[str]:
    kind, name = names.get(violation.urn, ("", ""))
    where = f"  ({display_type(kind)}: {name})" if kind else ""
    lines = [f"        - [{violation.enforcement_level}]  {violation.policy}{where}"]
    lines.append(f"          {violation.description}")
    lines += [f"          {line}" for line in violation.detail.splitlines()]
    return lines


def print_policies(
    result: PolicyResult,
    run: ProgramRun,
    violations: list[Violation],
    out: TextIO,
    style: Style | None = None,
) -> None:
    style = style or Style()
    mandatory = any(v.enforcement_level in ("mandatory", "remediate") for v in violations)
    mark = "❌" if mandatory else ("⚠️ " if violations else "✅")
    print("Policies:", file=out)
    print(f"    {mark} {result.pack_name}@v{result.pack_version} (local: policies)", file=out)
    names = {r.urn: (r.type, r.name) for r in run.resources}
    for violation in sorted(violations, key=lambda v: (v.policy, v.urn, v.detail)):
        for line in _violation_lines(violation, names):
            level = "error" if violation.enforcement_level in ("mandatory", "remediate") else "update"
            print(style.paint(line, level) if line.lstrip().startswith("- [") else line, file=out)
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


def print_outputs(run: ProgramRun, changes: ChangeSet, out: TextIO, style: Style | None = None) -> None:
    """Every output on a first plan; against a base, the outputs that change."""
    style = style or Style()
    compared = any(step.op == "same" for step in changes.steps[:1])
    if compared and not changes.output_changes:
        return
    print("Outputs:", file=out)
    if not compared:
        for line in _format_output(run.outputs, 4):
            print(line, file=out)
    for change in changes.output_changes:
        op = {"add": "create", "delete": "delete"}.get(change.kind, "update")
        for line in _change_lines(change, "~", "  "):
            print(style.paint(line, op), file=out)
    print(file=out)


def count_lines(changes: ChangeSet) -> list[str]:
    """Pulumi's `Resources:` block: one line per operation, then the changes and what stays."""
    counts = changes.counts()
    words = {"create": "to create", "update": "to update", "replace": "to replace", "delete": "to delete"}
    lines = [f"{SYMBOLS[op]} {counts[op]} {words[op]}" for op in words if counts.get(op)]
    changed = sum(counts.get(op, 0) for op in words)
    same = counts.get("same", 0)
    if same:
        lines.append(
            f"{changed} change{'s' if changed != 1 else ''}. {same} unchanged"
            if changed
            else f"{same} unchanged"
        )
    return lines


def _shown_path(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path


def print_summary(
    changes: ChangeSet,
    violations: list[Violation],
    out_dir: str,
    seconds: float,
    out: TextIO,
    style: Style | None = None,
) -> None:
    style = style or Style()
    mandatory = sum(1 for v in violations if v.enforcement_level in ("mandatory", "remediate"))
    advisory = sum(1 for v in violations if v.enforcement_level == "advisory")
    print("Resources:", file=out)
    for line in count_lines(changes):
        op = {"+": "create", "~": "update", "-": "delete", "+-": "replace"}.get(line.split(" ", 1)[0], "")
        print(f"    {style.paint(line, op)}", file=out)
    print(file=out)
    print(f"Policy violations: {mandatory} mandatory, {advisory} advisory", file=out)
    print(f"Plan written to {_shown_path(out_dir)}", file=out)
    print(f"Duration: {seconds:.1f}s", file=out)
