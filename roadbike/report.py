"""plan.json and the policy reports (JSON, SARIF 2.1.0, Markdown), all deterministic.

They are written from the run as recorded (`roadbike.redact.redact_run`): no secret reaches them.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from roadbike.analyzer import PolicyResult, Violation
from roadbike.diff import STACK_TYPE, SYMBOLS, ChangeSet, Step, refusal
from roadbike.locations import key_lines, violation_line, violation_path
from roadbike.program import ProgramRun

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_LEVEL = {"mandatory": "error", "remediate": "error", "advisory": "warning", "disabled": "none"}
INFORMATION_URI = "https://www.pulumi.com/docs/iac/using-pulumi/crossguard/"


def dump_json(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def plan_document(run: ProgramRun, changes: ChangeSet | None = None) -> dict[str, Any]:
    resources = sorted(run.resources, key=lambda r: r.urn)
    document: dict[str, Any] = {
        "project": run.project,
        "stack": run.stack,
        "resources": [
            {
                "urn": r.urn,
                "type": r.type,
                "name": r.name,
                "custom": r.custom,
                "parent": r.parent,
                "provider": r.provider,
                "inputs": r.inputs,
                "dependencies": r.dependencies,
                **({"protect": True} if r.protect else {}),
            }
            for r in resources
        ],
        "outputs": run.outputs,
    }
    if changes is not None:
        document["changes"] = change_document(changes)
    return document


def detailed_diff(step: Step) -> dict[str, dict[str, Any]]:
    """Pulumi's detailedDiff: each changed property path and its kind, `-replace` when it forces one."""
    found = {}
    for change in step.changes:
        replacing = change.path.split(".")[0].split("[")[0] in step.replace_reasons
        found[change.path] = {"kind": change.kind + ("-replace" if replacing else ""), "inputDiff": True}
    return found


def change_document(changes: ChangeSet) -> dict[str, Any]:
    """The change set as plan.json carries it: the base, the counts, every step that is not `same`."""
    return {
        "base": changes.base_label or None,
        "changeSummary": changes.counts(),
        "steps": [
            {
                "op": step.op,
                "urn": step.urn,
                **({"diffReasons": step.diff_reasons} if step.changes else {}),
                **({"replaceReasons": step.replace_reasons} if step.replace_reasons else {}),
                **({"detailedDiff": detailed_diff(step)} if step.changes else {}),
            }
            for step in changes.changed()
        ],
        "outputChanges": [
            {"path": c.path, "kind": c.kind, "old": c.old, "new": c.new} for c in changes.output_changes
        ],
        "refused": [{"op": step.op, "urn": step.urn, "message": refusal(step)} for step in changes.refused()],
    }


def _state(resource: dict[str, Any]) -> dict[str, Any]:
    return {
        k: resource[k]
        for k in ("urn", "custom", "type", "inputs", "parent", "provider", "dependencies")
        if k in resource
    }


def _preview_step(step: Step, outputs: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = {"op": step.op, "urn": step.urn}
    if step.type == STACK_TYPE:
        document["newState"] = {"urn": step.urn, "custom": False, "type": STACK_TYPE, "outputs": outputs}
    if step.new is not None:
        document["provider"] = step.new.get("provider", "")
        document["newState"] = _state(step.new)
    if step.old is not None:
        document["oldState"] = _state(step.old)
    document["detailedDiff"] = detailed_diff(step) if step.changes else None
    if step.changes:
        document["diffReasons"] = step.diff_reasons
    if step.replace_reasons:
        document["replaceReasons"] = step.replace_reasons
    return document


def diagnostic(message: str, severity: str = "error") -> dict[str, str]:
    """A diagnostic as `pulumi preview --json` writes one: the message with its severity in front."""
    return {"message": f"{severity}: {message}\n", "severity": severity}


def preview_document(result: Any) -> dict[str, Any]:
    """`pulumi preview --json`'s document (steps, diagnostics, duration in ns, changeSummary), with the
    policy violations as the engine's policy events and the stack's outputs on the stack's step."""
    policy, run, changes = result.policy, result.run, result.changes
    diagnostics = [diagnostic(note, "warning") for note in (result.base.problems if result.base else [])]
    diagnostics += [diagnostic(refusal(step)) for step in changes.refused()]
    mandatory = mandatory_violations(policy)
    if mandatory:
        diagnostics.append(
            diagnostic(f"the policy gate failed: {len(mandatory)} mandatory policy violations")
        )
    return {
        "config": result.config,
        "steps": [_preview_step(step, run.outputs) for step in changes.steps],
        "diagnostics": diagnostics,
        "policyEvents": [
            {
                "policyName": v.policy,
                "policyPackName": policy.pack_name,
                "policyPackVersion": policy.pack_version,
                "enforcementLevel": v.enforcement_level,
                "message": v.message,
                "resourceUrn": v.urn,
                "severity": v.severity,
            }
            for v in policy.violations
        ],
        "duration": int(result.seconds_total * 1e9),
        "changeSummary": changes.counts(),
    }


def mandatory_violations(result: PolicyResult) -> list[Violation]:
    return [v for v in result.violations if v.enforcement_level in ("mandatory", "remediate")]


def report_document(result: PolicyResult, run: ProgramRun) -> dict[str, Any]:
    violations = result.violations
    counts = Counter(v.policy for v in violations)
    return {
        "policyPack": {"name": result.pack_name, "version": result.pack_version},
        "stack": run.stack,
        "analyzedResources": result.analyzed_resources,
        "summary": {
            "mandatory": sum(1 for v in violations if v.enforcement_level in ("mandatory", "remediate")),
            "advisory": sum(1 for v in violations if v.enforcement_level == "advisory"),
            "passed": not any(v.enforcement_level in ("mandatory", "remediate") for v in violations),
        },
        "violations": [
            {
                "policy": v.policy,
                "enforcementLevel": v.enforcement_level,
                "severity": v.severity,
                "urn": v.urn,
                "message": v.detail,
            }
            for v in violations
        ],
        "policies": [
            {
                "name": p.name,
                "description": p.description,
                "enforcementLevel": p.enforcement_level,
                "severity": p.severity,
                "violations": counts.get(p.name, 0),
                "notApplicable": sorted(set(result.not_applicable.get(p.name, []))),
            }
            for p in sorted(result.policies, key=lambda p: p.name)
        ],
    }


def sarif_document(result: PolicyResult, run: ProgramRun, stack_uri: str, stack_text: str) -> dict[str, Any]:
    """SARIF 2.1.0; each result at the stack file's line of the key that causes it (roadbike.locations),
    the file named from the root of its repository."""
    lines, config = key_lines(stack_text)
    policies = sorted(result.policies, key=lambda p: p.name)
    index = {p.name: i for i, p in enumerate(policies)}
    rules = [
        {
            "id": p.name,
            "name": p.name,
            "shortDescription": {"text": p.description},
            "fullDescription": {"text": p.description},
            "defaultConfiguration": {"level": SARIF_LEVEL.get(p.enforcement_level, "warning")},
            "properties": {
                "enforcementLevel": p.enforcement_level,
                "severity": p.severity,
                "tags": ["security"],
            },
        }
        for p in policies
    ]
    results = [
        {
            "ruleId": v.policy,
            "ruleIndex": index.get(v.policy, 0),
            "level": SARIF_LEVEL.get(v.enforcement_level, "warning"),
            "message": {"text": v.detail},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": stack_uri, "uriBaseId": "%SRCROOT%"},
                        "region": {
                            "startLine": violation_line(
                                lines, violation_path(v.policy, v.urn, v.detail, config)
                            )
                        },
                    },
                    "logicalLocations": [{"fullyQualifiedName": v.urn or run.stack_urn, "kind": "resource"}],
                }
            ],
            "partialFingerprints": {"roadbikeUrn/v1": f"{v.policy}:{v.urn}"},
        }
        for v in result.violations
        if v.policy in index
    ]
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": f"{result.pack_name}-policy-pack",
                        "version": result.pack_version,
                        "informationUri": INFORMATION_URI,
                        "rules": rules,
                    }
                },
                "automationDetails": {"id": f"roadbike/plan/{run.stack}/"},
                "results": results,
            }
        ],
    }


MAX_CHANGE_ROWS = 200
MAX_PATHS_PER_ROW = 5
MAX_DIFF_LINES = 400
MAX_DIFF_CHARS = 400_000  # GitHub refuses a step summary over 1 MiB


def _code(text: str) -> str:
    """A Markdown code span that no backtick in `text` can close; `|` escaped for table cells."""
    text = text.replace("\n", " ").replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    return f"{fence} {text} {fence}" if longest else f"`{text}`"


def _text(text: str) -> str:
    """Free text in a table cell: no HTML, no table syntax, one line."""
    return html.escape(text.replace("\n", " "), quote=False).replace("|", "\\|")


def _fenced(body: str, language: str) -> list[str]:
    longest = max((len(run) for run in re.findall(r"^`{3,}", body, re.M)), default=2)
    fence = "`" * (longest + 1)
    return [f"{fence}{language}", body.rstrip("\n"), fence]


def _count_phrase(changes: ChangeSet) -> str:
    counts = changes.counts()
    words = {"create": "to create", "update": "to update", "replace": "to replace", "delete": "to delete"}
    parts = [f"{SYMBOLS[op]} {counts[op]} {words[op]}" for op in words if counts.get(op)]
    if counts.get("same"):
        parts.append(f"{counts['same']} unchanged")
    return ", ".join(parts) or "no resources"


def _step_paths(step: Step) -> str:
    paths = [c.path for c in step.changes]
    shown = ", ".join(_code(p) for p in paths[:MAX_PATHS_PER_ROW])
    more = len(paths) - MAX_PATHS_PER_ROW
    return shown + (f" and {more} more" if more > 0 else "")


def _change_section(changes: ChangeSet, base_notes: list[str]) -> list[str]:
    compared = bool(changes.steps) and changes.steps[0].op == "same"
    title = f"### Change against {_code(changes.base_label)}" if changes.base_label else "### Change"
    lines = [title, "", f"**{_count_phrase(changes)}**", ""]
    refused = changes.refused()
    if refused:
        lines += [":x: **Refused**: a protected resource would be deleted or replaced.", ""]
        lines += [f"- {_text(refusal(step))}" for step in refused] + [""]
    if changes.base_label and not compared:
        lines += ["The base does not plan, so every resource is shown as created:", ""]
    lines += [f"- {_text(note)}" for note in base_notes] + ([""] if base_notes else [])
    if not compared:
        if not changes.base_label:
            lines += ["No base to compare with: `roadbike plan --against BASE` shows what changes.", ""]
        return lines
    changed = [s for s in changes.changed() if s.type != "pulumi:pulumi:Stack"]
    if changed:
        lines += ["| | resource | type | properties |", "| --- | --- | --- | --- |"]
        for step in changed[:MAX_CHANGE_ROWS]:
            symbol = SYMBOLS[step.op].replace("-", "\\-").replace("+", "\\+")
            lines.append(f"| {symbol} | {_code(step.name)} | {_code(step.type)} | {_step_paths(step)} |")
        if len(changed) > MAX_CHANGE_ROWS:
            lines.append(f"| | and {len(changed) - MAX_CHANGE_ROWS} more | | |")
        lines.append("")
    if changes.output_changes:
        symbols = {"add": "+", "delete": "-"}
        paths = ", ".join(f"{symbols.get(c.kind, '~')} {_code(c.path)}" for c in changes.output_changes)
        lines += [f"Outputs: {paths}", ""]
    return lines


def _violation_section(violations: list[Violation]) -> list[str]:
    if not violations:
        return ["No policy violations.", ""]
    lines = [
        "### Policy violations",
        "",
        "| policy | level | resource | message |",
        "| --- | --- | --- | --- |",
    ]
    for v in sorted(violations, key=lambda v: (v.policy, v.urn, v.detail)):
        resource = _code(v.urn.rsplit("::", 1)[-1]) if v.urn else ""
        lines.append(f"| {_code(v.policy)} | {v.enforcement_level} | {resource} | {_text(v.detail)} |")
    return [*lines, ""]


def _diff_stat(diff: str) -> str:
    lines = diff.splitlines()[2:]
    added = sum(1 for line in lines if line.startswith("+"))
    removed = sum(1 for line in lines if line.startswith("-"))
    return f"+{added} -{removed}"


def _artifact_section(diffs: dict[str, str]) -> list[str]:
    if not diffs:
        return []
    lines = [f"### Changed artifacts ({len(diffs)})", ""]
    budget = MAX_DIFF_CHARS
    for path, diff in diffs.items():
        body_lines = diff.splitlines()
        body = "\n".join(body_lines[:MAX_DIFF_LINES])
        if len(body_lines) > MAX_DIFF_LINES:
            body += f"\n... {len(body_lines) - MAX_DIFF_LINES} more lines: diff the plan directories"
        summary = f"<summary><code>{html.escape(path)}</code> ({_diff_stat(diff)})</summary>"
        if len(body) > budget:
            lines += [
                f"<details>{summary}",
                "",
                "Left out: the summary is at its size limit.",
                "",
                "</details>",
            ]
            continue
        budget -= len(body)
        lines += [f"<details>{summary}", "", *_fenced(body, "diff"), "", "</details>", ""]
    return lines


def summary_markdown(
    result: PolicyResult,
    run: ProgramRun,
    resource_counts: dict[str, int],
    changes: ChangeSet | None = None,
    diffs: dict[str, str] | None = None,
    base_notes: list[str] | None = None,
) -> str:
    """The pull-request summary: the change first, then the violations, then the changed artifacts."""
    violations = result.violations
    mandatory = [v for v in violations if v.enforcement_level in ("mandatory", "remediate")]
    advisory = [v for v in violations if v.enforcement_level == "advisory"]
    refused = bool(changes and changes.refused())
    verdict = ("passed" if not mandatory else "failed") + ("; the change is refused" if refused else "")
    icon = ":white_check_mark:" if not (mandatory or refused) else ":x:"
    counts = {"pulumi:pulumi:Stack": 1, **resource_counts}
    lines = [f"## {icon} roadbike plan {_code(run.stack)}: policy gate {verdict}", ""]
    if changes is not None:
        lines += _change_section(changes, base_notes or [])
    lines += _violation_section(violations)
    lines += _artifact_section(diffs or {})
    lines += [
        f"Policy pack `{result.pack_name}@v{result.pack_version}`: {len(result.policies)} policies, "
        f"{result.analyzed_resources} resources analyzed, {len(mandatory)} mandatory and "
        f"{len(advisory)} advisory violations.",
        "",
        f"<details><summary>{sum(counts.values())} resources by type</summary>",
        "",
        "| type | count |",
        "| --- | ---: |",
        *[f"| {_code(t)} | {n} |" for t, n in sorted(counts.items())],
        "",
        "</details>",
        "",
    ]
    return "\n".join(lines)


def failure_files(project: str, stack: str, errors: list[str]) -> dict[str, str]:
    """What a plan that could not run leaves in its directory: the errors, in every file CI reads."""
    notifications = [{"level": "error", "message": {"text": line}} for line in errors]
    sarif = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": f"{project}-policy-pack", "informationUri": INFORMATION_URI}},
                "automationDetails": {"id": f"roadbike/plan/{stack}/"},
                "invocations": [{"executionSuccessful": False, "toolExecutionNotifications": notifications}],
                "results": [],
            }
        ],
    }
    report = {
        "stack": stack,
        "errors": errors,
        "summary": {"mandatory": 0, "advisory": 0, "passed": False},
        "violations": [],
        "policies": [],
    }
    body = "\n".join(f"error: {line}" for line in errors)
    summary = [
        f"## :x: roadbike plan {_code(stack)}: the plan failed",
        "",
        "No resource was planned and the policy gate did not run:",
        "",
        *_fenced(body, "text"),
        "",
    ]
    return {
        "plan.json": dump_json(
            {"project": project, "stack": stack, "error": errors, "resources": [], "outputs": {}}
        ),
        "policy/report.json": dump_json(report),
        "policy/report.sarif": dump_json(sarif),
        "policy/summary.md": "\n".join(summary),
    }


def write_json(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_json(document), encoding="utf-8")
