"""Shared test helpers: stack configs, the program under mocks, the policy pack over gRPC, real tools."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from components.config import PROJECT, StackConfig, parse_stack_config
from roadbike.analyzer import PolicyPackProcess, PolicyResult, analyze
from roadbike.program import ProgramRun, RecordedResource, run_program
from roadbike.stackfile import StackFile, load_stack

REPO = Path(__file__).resolve().parent.parent
STACKS = sorted(
    p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in (REPO / "stacks").glob("Pulumi.*.yaml")
)


def crds() -> Path:
    """The upstream CRDs that `make crds` fetches (tools/crds): $ROADBIKE_CRDS, else .tools/crds."""
    path = Path(os.environ.get("ROADBIKE_CRDS") or REPO / ".tools" / "crds")
    if not (path / "stamp").is_file():
        raise AssertionError(
            f"no upstream CRDs in {path}: run `make crds` (tools/crds/fetch.py) to fetch them"
        )
    return path


def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    """The upstream openAPIV3Schema of one kind at the version the stacks create.

    apiVersion, kind and metadata are added at the root where the CRD leaves them out, as the API
    server always accepts them.
    """
    path = crds() / "schemas" / api_version / f"{kind.lower()}.json"
    if not path.is_file():
        raise AssertionError(
            f"{path} is missing: run `make crds`; tools/crds/fetch.py lists the kinds it fetches"
        )
    schema = json.loads(path.read_text())
    implicit = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
    return {**schema, "properties": {**implicit, **schema.get("properties", {})}}


def crd_errors(manifest: dict[str, Any]) -> list[str]:
    """A custom object's errors against its kind's upstream schema, unknown fields rejected.

    Not check_schema: some CRDs' patterns are Go regexps (`(?i)` mid-pattern) that Python's re refuses.
    """
    schema = strict_schema(crd_schema(manifest["apiVersion"], manifest["kind"]))
    found = jsonschema.Draft4Validator(schema).iter_errors(manifest)
    return sorted(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in found)


def typescript() -> Path:
    """The TypeScript compiler `make tools` fetches with Grafana's dashboard types: $ROADBIKE_GRAFANA."""
    path = Path(os.environ.get("ROADBIKE_GRAFANA") or REPO / ".tools" / "grafana")
    if not (path / "stamp").is_file():
        raise AssertionError(
            f"no TypeScript compiler in {path}: run `make tools` (npm: @grafana/schema, typescript)"
        )
    return path / "typescript" / "lib" / "tsc.js"


def type_check(source: Path, *options: str) -> str:
    """`tsc --strict --noEmit` of one file: its errors, empty when it compiles."""
    result = subprocess.run(
        [
            require_tool("node"),
            str(typescript()),
            "--noEmit",
            "--strict",
            "--target",
            "es2020",
            *options,
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    return result.stdout + result.stderr if result.returncode else ""


def stack_raw(stack: str = "dev") -> dict[str, Any]:
    """The `roadbike:*` config of a committed stack as the plan reads it (secrets, the external registry's
    password among them, as stand-ins), without the namespace prefix: a deep copy to edit."""
    return copy.deepcopy(load_stack(REPO / "stacks" / f"Pulumi.{stack}.yaml")[0].raw)


def _has_password(raw: dict[str, Any]) -> bool:
    registry = raw.get("registry")
    return isinstance(registry, dict) and registry.get("password") is not None


def parse(raw: dict[str, Any]) -> StackConfig:
    """Parse as the stack loader would: a registry password is given as a secret (`secure:`)."""
    secret_paths = [("registry", "password")] if _has_password(raw) else []
    return parse_stack_config(raw, "stacks/Pulumi.test.yaml", secret_paths)


def run_raw(raw: dict[str, Any], stack: str = "test", secret_keys: list[str] | None = None) -> ProgramRun:
    """Run the real program under the mock monitor with this config (a registry password as a secret)."""
    if secret_keys is None:
        secret_keys = [f"{PROJECT}:registry"] if _has_password(raw) else []
    stack_file = StackFile(path=Path("test.yaml"), display="test.yaml", raw=raw, secret_keys=secret_keys)
    return run_program(REPO, PROJECT, stack, stack_file.pulumi_config(), stack_file.secret_keys)


def write_stack(path: Path, raw: dict[str, Any]) -> Path:
    """A stack file of this config; a plain registry password is written as a `secure:` value."""
    if _has_password(raw) and not isinstance(raw["registry"]["password"], dict):
        raw = {**raw, "registry": {**raw["registry"], "password": {"secure": "v1:test-secret"}}}
    path.write_text(
        yaml.safe_dump({"config": {f"{PROJECT}:{k}": v for k, v in raw.items()}}, sort_keys=False)
    )
    return path


def resource(
    type_: str, name: str, inputs: dict[str, Any], parent: str = "", stack: str = "test"
) -> RecordedResource:
    return RecordedResource(
        urn=f"urn:pulumi:{stack}::{PROJECT}::{type_}::{name}",
        type=type_,
        name=name,
        custom=True,
        parent=parent,
        dependencies=[],
        property_dependencies={},
        inputs=inputs,
    )


def analyze_resources(
    pack: PolicyPackProcess, resources: list[RecordedResource], config: dict[str, Any] | None = None
) -> PolicyResult:
    run = ProgramRun(project=PROJECT, stack="test", resources=resources)
    return analyze(pack, run, config or {})


def violated(result: PolicyResult, policy: str) -> list[str]:
    """Messages of one policy's violations; asserting the policy exists keeps typos from passing."""
    assert policy in {p.name for p in result.policies}, f"no policy named {policy!r} in the pack"
    return [v.detail for v in result.violations if v.policy == policy]


def require_tool(name: str) -> str:
    """Path of a tool the test needs; a missing tool fails the test (CI installs them all)."""
    path = shutil.which(name) or (
        str(Path(sys.executable).parent / name) if (Path(sys.executable).parent / name).exists() else None
    )
    if path is None:
        raise AssertionError(f"{name} is not installed: run `make test` or `.ci/run`, which install it")
    return path


def roadbike(
    *args: str, cwd: Path = REPO, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "roadbike"), *args]
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of a CRD openAPIV3Schema that rejects unknown fields at every level.

    Every object schema with `properties` and no explicit `additionalProperties` (nor Kubernetes'
    preserve-unknown-fields) gets `additionalProperties: false`.
    """
    node = dict(schema)
    if "properties" in node:
        node["properties"] = {name: strict_schema(sub) for name, sub in node["properties"].items()}
        if "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
    for key in ("items", "additionalProperties", "not"):
        if isinstance(node.get(key), dict):
            node[key] = strict_schema(node[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in node:
            node[key] = [strict_schema(sub) for sub in node[key]]
    return node


def of_type(run: ProgramRun, resource_type: str) -> list[RecordedResource]:
    return [r for r in run.resources if r.type == resource_type]


def by_name(run: ProgramRun, resource_type: str) -> dict[str, RecordedResource]:
    return {r.name: r for r in of_type(run, resource_type)}


def zizmor(*paths: Path) -> subprocess.CompletedProcess[str]:
    """zizmor as the acceptance asks: offline, auditor persona, every finding as JSON."""
    command = [
        require_tool("zizmor"),
        "--offline",
        "--persona",
        "auditor",
        "--collect=all",
        "--format",
        "json",
    ]
    return subprocess.run([*command, "--", *map(str, paths)], capture_output=True, text=True, timeout=120)


def check_jsonschema(schema: str, *paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("check-jsonschema"), "--builtin-schema", schema, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def go_tools_bin() -> Path:
    """The bin directory of the Go tools `make go-tools` builds (tools/build-go-tools.sh)."""
    script = REPO / "tools" / "build-go-tools.sh"
    result = subprocess.run(
        [str(script), "--bin-dir"], capture_output=True, text=True, check=True, timeout=30
    )
    return Path(result.stdout.strip())


def require_go_tool(name: str) -> str:
    """A Go tool of tools/go-tools.txt; a missing one fails naming the make target that builds it."""
    path = go_tools_bin() / name
    if not os.access(path, os.X_OK):
        raise AssertionError(f"{name} is not built: run `make go-tools` (tools/build-go-tools.sh {name})")
    return str(path)


def vulndb() -> Path:
    """The offline Go vulnerability database pinned by tools/vulndb/go.mod (`make go-tools` downloads it)."""
    result = subprocess.run(
        ["go", "mod", "download", "-json", "golang.org/x/vulndb"],
        cwd=REPO / "tools" / "vulndb",
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "GOFLAGS": "-mod=readonly"},
    )
    if result.returncode != 0:
        raise AssertionError(f"the vulnerability database is not there: run `make go-tools`\n{result.stderr}")
    return Path(json.loads(result.stdout)["Dir"]) / "data" / "osv"


def image_layer(binary: Path, entrypoint: str) -> Path:
    """One layer holding the binary at `/<entrypoint>`: root-owned, mode 0755, mtime 0."""
    path = binary.with_suffix(".tar")
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo(entrypoint)
        info.size, info.mode, info.mtime = binary.stat().st_size, 0o755, 0
        with binary.open("rb") as content:
            tar.addfile(info, content)
    return path
