"""Fetch the upstream CustomResourceDefinitions the tests validate against, from the Go module proxy.

`go.mod` beside this file pins one upstream Go module per project and `go.sum` pins each module's
content; `go mod download` verifies every download against `go.sum`. From the module cache this
script copies each CRD listed in `CRDS` below, unchanged, to `<out>/manifests/<crd name>.yaml` (for
a real kube-apiserver) and writes the `openAPIV3Schema` of the version the stacks create as JSON to
`<out>/schemas/<group>/<version>/<kind lowercased>.json` (what the tests validate with jsonschema).
`<out>/index.json` records where each file came from.

    python tools/crds/fetch.py [OUT]     # OUT: $ROADBIKE_CRDS, else .tools/crds in the repository

A stamp (`<out>/stamp`) holds a digest of go.mod, go.sum and this script: while it matches and every
file is there, nothing is downloaded again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

# (Go module, path inside the module zip, apiVersion the stacks create, kind). Versions: go.mod.
CRDS = [
    *(
        (
            "github.com/chaos-mesh/chaos-mesh",
            f"config/crd/bases/chaos-mesh.org_{plural}.yaml",
            "chaos-mesh.org/v1alpha1",
            kind,
        )
        for plural, kind in (
            ("schedules", "Schedule"),
            ("networkchaos", "NetworkChaos"),
            ("stresschaos", "StressChaos"),
            ("podchaos", "PodChaos"),
        )
    ),
    *(
        (
            "github.com/prometheus-operator/prometheus-operator",
            f"example/prometheus-operator-crd/monitoring.coreos.com_{plural}.yaml",
            api_version,
            kind,
        )
        for plural, api_version, kind in (
            ("prometheusrules", "monitoring.coreos.com/v1", "PrometheusRule"),
            ("servicemonitors", "monitoring.coreos.com/v1", "ServiceMonitor"),
            ("alertmanagerconfigs", "monitoring.coreos.com/v1alpha1", "AlertmanagerConfig"),
        )
    ),
    (
        "github.com/argoproj/argo-rollouts",
        "manifests/crds/analysis-template-crd.yaml",
        "argoproj.io/v1alpha1",
        "AnalysisTemplate",
    ),
    (
        "github.com/argoproj/argo-rollouts",
        "manifests/crds/rollout-crd.yaml",
        "argoproj.io/v1alpha1",
        "Rollout",
    ),
    (
        "github.com/sigstore/policy-controller",
        "config/300-clusterimagepolicy.yaml",
        "policy.sigstore.dev/v1beta1",
        "ClusterImagePolicy",
    ),
    (
        "github.com/cert-manager/cert-manager",
        "deploy/crds/cert-manager.io_certificates.yaml",
        "cert-manager.io/v1",
        "Certificate",
    ),
]


class CrdLoader(yaml.SafeLoader):
    """YAML as the API server reads CRDs: a plain `=` (an enum value in some CRDs) is a string."""


def plain_string(loader: CrdLoader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


CrdLoader.add_constructor("tag:yaml.org,2002:value", plain_string)


def fail(message: str) -> None:
    sys.exit(f"fetch.py: {message}")


def schema_path(api_version: str, kind: str) -> str:
    return f"schemas/{api_version}/{kind.lower()}.json"


def stamp() -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "fetch.py"):
        digest.update(name.encode() + b"\0" + (HERE / name).read_bytes() + b"\0")
    return digest.hexdigest()


def up_to_date(out: Path) -> bool:
    if not (out / "stamp").is_file() or (out / "stamp").read_text().strip() != stamp():
        return False
    index = json.loads((out / "index.json").read_text()) if (out / "index.json").is_file() else []
    return len(index) == len(CRDS) and all(
        (out / entry[key]).is_file() for entry in index for key in ("manifest", "schema")
    )


def go_sum() -> dict[tuple[str, str], str]:
    sums = {}
    for line in (HERE / "go.sum").read_text().splitlines():
        module, version, digest = line.split()
        sums[(module, version)] = digest
    return sums


def download(module: str) -> dict[str, Any]:
    """`go mod download` of the version go.mod pins; the go command checks the zip against go.sum."""
    if shutil.which("go") is None:
        fail("the go command is not installed; it fetches the CRDs from the Go module proxy")
    env = {**os.environ, "GOWORK": "off", "GOFLAGS": "-mod=readonly"}
    result = subprocess.run(
        ["go", "mod", "download", "-json", module], cwd=HERE, env=env, capture_output=True, text=True
    )
    info = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    if result.returncode != 0 or "Error" in info or not info.get("Dir"):
        detail = info.get("Error") or result.stderr.strip() or f"exit {result.returncode}"
        fail(f"could not download {module} (pinned in tools/crds/go.mod): {detail}")
    pinned = go_sum().get((module, info["Version"]))
    if pinned is None or pinned != info.get("Sum"):
        fail(f"{module}@{info['Version']}: go.sum pins {pinned}, the download has {info.get('Sum')}")
    return info


def schema_of(source: Path, api_version: str, kind: str) -> tuple[str, bool, dict[str, Any]]:
    docs = [d for d in yaml.load_all(source.read_text(), Loader=CrdLoader) if d]
    group, version = api_version.split("/")
    if len(docs) != 1 or docs[0].get("kind") != "CustomResourceDefinition":
        fail(f"{source}: expected one CustomResourceDefinition")
    crd = docs[0]
    if crd["spec"]["group"] != group or crd["spec"]["names"]["kind"] != kind:
        fail(f"{source}: defines {crd['spec']['names']['kind']} in {crd['spec']['group']}, not {kind}")
    versions = {v["name"]: v for v in crd["spec"]["versions"]}
    if version not in versions or not versions[version]["served"]:
        fail(f"{source}: {kind} {version} is not a served version (has {sorted(versions)})")
    served = versions[version]
    return crd["metadata"]["name"], served["storage"], served["schema"]["openAPIV3Schema"]


def fetch(out: Path) -> None:
    infos = {module: download(module) for module in dict.fromkeys(m for m, *_ in CRDS)}
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".crds-", dir=out.parent))
    try:
        write(infos, staging)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write(infos: dict[str, dict[str, Any]], staging: Path) -> None:
    index = []
    for module, path, api_version, kind in CRDS:
        source = Path(infos[module]["Dir"]) / path
        if not source.is_file():
            fail(f"{module}@{infos[module]['Version']} has no {path}")
        name, storage, schema = schema_of(source, api_version, kind)
        manifest = f"manifests/{name}.yaml"
        (staging / manifest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, staging / manifest)
        (staging / schema_path(api_version, kind)).parent.mkdir(parents=True, exist_ok=True)
        (staging / schema_path(api_version, kind)).write_text(json.dumps(schema, indent=2) + "\n")
        index.append(
            {
                "apiVersion": api_version,
                "kind": kind,
                "module": module,
                "version": infos[module]["Version"],
                "path": path,
                "storageVersion": storage,
                "sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
                "manifest": manifest,
                "schema": schema_path(api_version, kind),
            }
        )
    (staging / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    (staging / "stamp").write_text(stamp() + "\n")


def main() -> None:
    out = Path(
        sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ROADBIKE_CRDS") or REPO / ".tools" / "crds"
    )
    if up_to_date(out):
        (out / "stamp").touch()
        print(f"{out}: upstream CRDs up to date")
        return
    fetch(out)
    print(f"{out}: {len(CRDS)} upstream CRDs fetched")


if __name__ == "__main__":
    main()
