"""Every GitHub resource `roadbike plan` records, held to the pulumi-github provider's own input types.

The provider cannot be built here (README: The real Pulumi engine, built here), so no engine checks these
inputs. Its Node.js SDK at the Python SDK's version carries the provider schema as TypeScript: per resource
`<module>.d.ts` with `<Resource>Args`, nested types in `types/input.d.ts`, in the engine's camelCase names,
the names plan.json records. Each resource's recorded inputs become a literal of its `<Resource>Args`,
compiled with `tsc --strict`: an unknown key (object literals get excess property checks), a missing
required input or a value of the wrong type fails.

Two recorded values are not the value itself. A secret is `[secret]`: every secret input of these resources
is a string, so it checks as one. A value unknown at preview is `output<string>`: it is written as a
`pulumi.Output<string>`, which is what the engine knows of it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from roadbike.redact import UNKNOWN_SHOWN
from tests.helpers import REPO, STACKS, roadbike, stack_raw, type_check, write_stack

TYPE_TOKEN = re.compile(r"github:index/(?P<module>[a-z][A-Za-z0-9]*):(?P<resource>[A-Z][A-Za-z0-9]*)")
DEPLOYER_APP_ID = 987654
PlannedResources = list[dict[str, Any]]


def github_types() -> Path:
    """The provider's declarations that `make tools` fetches: $ROADBIKE_GITHUB_TYPES, else .tools."""
    path = Path(os.environ.get("ROADBIKE_GITHUB_TYPES") or REPO / ".tools" / "github-types")
    if not (path / "stamp").is_file():
        raise AssertionError(
            f"no pulumi-github input types in {path}: run `make tools` (npm: @pulumi/github, @pulumi/pulumi)"
        )
    return path.resolve() / "node_modules" / "@pulumi"


def github_resources(plan_dir: Path) -> PlannedResources:
    resources = json.loads((plan_dir / "plan.json").read_text())["resources"]
    return [r for r in resources if r["type"].startswith("github:")]


@pytest.fixture(scope="module")
def planned(
    plans: dict[str, tuple[Path, subprocess.CompletedProcess[str]]], tmp_path_factory: pytest.TempPathFactory
) -> PlannedResources:
    """The GitHub resources of every committed stack's plan, and of dev with a deploying app (the
    ruleset's `bypassActors`)."""
    resources = []
    for stack in STACKS:
        out, result = plans[stack]
        assert result.returncode == 0, result.stderr
        resources += github_resources(out)
    raw = stack_raw("dev")
    raw["github"]["deployerAppId"] = DEPLOYER_APP_ID
    workdir = tmp_path_factory.mktemp("deployer")
    stack_file = write_stack(workdir / "Pulumi.dev.yaml", raw)
    result = roadbike(
        "plan", "--stack", "dev", "--config-file", str(stack_file), "--out", str(workdir / "plan")
    )
    assert result.returncode == 0, result.stderr
    return resources + github_resources(workdir / "plan")


def literal(value: Any) -> str:
    """The recorded value as a TypeScript expression: JSON, but an unknown is an `Output<string>`."""
    if value == UNKNOWN_SHOWN:
        return "unknownAtPreview"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    return json.dumps(value)


def schema_errors(resources: PlannedResources, workdir: Path) -> str:
    """tsc's errors for each resource's inputs as a literal of its type's `<Resource>Args`, each error line
    led by the URN of the resource it is about."""
    types = github_types()
    imports: dict[str, str] = {}
    lines = []
    urn_of_line: dict[int, str] = {}
    for i, resource in enumerate(resources):
        token = TYPE_TOKEN.fullmatch(resource["type"])
        assert token, (
            f"{resource['urn']}: type token {resource['type']!r} is not github:index/<module>:<Name>"
        )
        module, args = token["module"], f"{token['resource']}Args"
        declarations = types / "github" / f"{module}.d.ts"
        assert declarations.is_file(), f"{resource['urn']}: @pulumi/github has no {module}.d.ts"
        imports[args] = f'import type {{ {args} }} from "{declarations.with_suffix("").with_suffix("")}";'
        urn_of_line[len(lines)] = resource["urn"]
        lines.append(f"export const resource{i}: {args} = {literal(resource['inputs'])};")
    header = [
        'import type { Output } from "' + str(types / "pulumi" / "index") + '";',
        *sorted(imports.values()),
        "declare const unknownAtPreview: Output<string>;",
    ]
    source = workdir / "github-resources.ts"
    source.write_text("\n".join(header + lines) + "\n")
    # Resolved as Node.js does (the provider's `@pulumi/pulumi` from its node_modules); the Node.js SDK's
    # own declarations name modules (grpc, protobuf) that are not fetched, and are not checked themselves.
    errors = type_check(source, "--module", "commonjs", "--moduleResolution", "node10", "--skipLibCheck")
    first = len(header) + 1
    return re.sub(
        r"^.*?github-resources\.ts\((\d+),(\d+)\)",
        lambda m: f"{urn_of_line.get(int(m[1]) - first, '?')} ({m[1]},{m[2]})",
        errors,
        flags=re.MULTILINE,
    )


def test_the_types_are_of_the_provider_version_the_program_uses() -> None:
    package = json.loads((github_types() / "github" / "package.json").read_text())
    installed = version("pulumi-github")
    assert package["version"] == installed, (
        f"the pulumi-github input types are of {package['version']}, the program's SDK is {installed}: set"
        " the Makefile's PULUMI_GITHUB_VERSION to pyproject.toml's pin, then `rm -rf .tools/github-types &&"
        " make tools`"
    )


def test_every_planned_github_resource_has_the_providers_input_types(
    planned: PlannedResources, tmp_path: Path
) -> None:
    types = {r["type"].rsplit(":", 1)[1] for r in planned}
    assert {"Repository", "RepositoryRuleset", "RepositoryFile", "RepositoryWebhook"} <= types
    assert any(r["inputs"].get("bypassActors") for r in planned)
    assert schema_errors(planned, tmp_path) == ""


def test_type_check_refuses_what_the_provider_does_not_take(
    planned: PlannedResources, tmp_path: Path
) -> None:
    ruleset = next(r for r in planned if r["inputs"].get("bypassActors"))
    file, other_file = [r for r in planned if r["type"].endswith(":RepositoryFile")][:2]

    def changed(resource: dict[str, Any], **inputs: Any) -> dict[str, Any]:
        copy = json.loads(json.dumps(resource))
        copy["inputs"].update(inputs)
        return copy

    misspelled = changed(ruleset, bypassActor=ruleset["inputs"]["bypassActors"])
    del misspelled["inputs"]["bypassActors"]
    actor = ruleset["inputs"]["bypassActors"][0]
    as_string = changed(ruleset, bypassActors=[{**actor, "actorId": str(DEPLOYER_APP_ID)}])
    unknown_number = changed(ruleset, bypassActors=[{**actor, "actorId": UNKNOWN_SHOWN}])
    without_file = changed(file)
    del without_file["inputs"]["file"]
    unknown_content = changed(other_file, content=UNKNOWN_SHOWN)
    errors = schema_errors([misspelled, as_string, unknown_number, without_file, unknown_content], tmp_path)
    assert """'"bypassActor"' does not exist in type 'RepositoryRulesetArgs'""" in errors
    assert "Type 'string' is not assignable to type 'Input<number | undefined>'" in errors
    assert "Type 'Output<string>' is not assignable to type 'Input<number | undefined>'" in errors
    assert "Property 'file' is missing" in errors
    assert errors.count(f"{ruleset['urn']} (") == 3
    assert errors.count(f"{file['urn']} (") == 1
    assert other_file["urn"] not in errors
