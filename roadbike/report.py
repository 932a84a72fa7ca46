"""plan.json and the policy reports (JSON, SARIF 2.1.0, Markdown), all deterministic.

They are written from the run as recorded (`roadbike.redact.redact_run`): no secret reaches them.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from roadbike.analyzer import PolicyResult, Violation
from roadbike.program import ProgramRun

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_LEVEL = {"mandatory": "error", "remediate": "error", "advisory": "warning", "disabled": "none"}
INFORMATION_URI = "https://www.pulumi.com/docs/iac/using-pulumi/crossguard/"


def dump_json(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def plan_document(run: ProgramRun) -> dict[str, Any]:
    resources = sorted(run.resources, key=lambda r: r.urn)
    return {
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
            }
            for r in resources
        ],
        "outputs": run.outputs,
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


def _stack_line(stack_text: str, urn: str) -> int:
    """Line of the stack file that declares the service a resource belongs to (1 when none does)."""
    lines = stack_text.splitlines()
    names = re.findall(r"^\s*-\s*name:\s*['\"]?([a-z0-9-]+)", stack_text, re.M)
    resource_name = urn.rsplit("::", 1)[-1]
    best = ""
    for name in names:
        if (resource_name == name or resource_name.startswith(name + "-")) and len(name) > len(best):
            best = name
    if best:
        pattern = re.compile(rf"^\s*-\s*name:\s*['\"]?{re.escape(best)}['\"]?\s*$")
        for number, line in enumerate(lines, start=1):
            if pattern.match(line):
                return number
    return 1


def sarif_document(result: PolicyResult, run: ProgramRun, stack_file: str, stack_text: str) -> dict[str, Any]:
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
                        "artifactLocation": {"uri": stack_file},
                        "region": {"startLine": _stack_line(stack_text, v.urn)},
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


def summary_markdown(result: PolicyResult, run: ProgramRun, resource_counts: dict[str, int]) -> str:
    violations = result.violations
    mandatory = [v for v in violations if v.enforcement_level in ("mandatory", "remediate")]
    advisory = [v for v in violations if v.enforcement_level == "advisory"]
    verdict = "passed" if not mandatory else "failed"
    icon = ":white_check_mark:" if not mandatory else ":x:"
    lines = [
        f"## {icon} roadbike plan `{run.stack}`: policy gate {verdict}",
        "",
        f"Policy pack `{result.pack_name}@v{result.pack_version}`: {len(result.policies)} policies, "
        f"{result.analyzed_resources} resources analyzed, {len(mandatory)} mandatory and "
        f"{len(advisory)} advisory violations.",
        "",
        "| resources | count |",
        "| --- | ---: |",
        *[f"| `{t}` | {n} |" for t, n in sorted(resource_counts.items())],
        "",
    ]
    if violations:
        lines += ["| policy | level | resource | message |", "| --- | --- | --- | --- |"]
        for v in violations:
            message = v.detail.replace("|", "\\|").replace("\n", " ")
            lines.append(
                f"| `{v.policy}` | {v.enforcement_level} | `{v.urn.rsplit('::', 1)[-1]}` | {message} |"
            )
        lines.append("")
    else:
        lines += ["No policy violations.", ""]
    return "\n".join(lines)


def write_json(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_json(document), encoding="utf-8")
