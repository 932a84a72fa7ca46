"""GitOps mode for real: `pulumi up` writes the manifests (the provider's renderYamlToDirectory) and they
are the objects `roadbike plan` writes under k8s/, content for content."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.engine.real_engine import scratch_stack
from tests.helpers import roadbike, stack_raw, write_stack
from tests.kubernetes.test_up import UP, key, planned_manifests

UNKNOWN = "output<string>"


class GoYamlLoader(yaml.SafeLoader):
    """YAML as Go's parsers (Argo CD, Flux) read it: a plain `=` (AlertmanagerConfig's `matchType: =`,
    which the provider writes unquoted) is the string "=", not YAML 1.1's value key."""


GoYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:value"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def with_known(planned: Any, rendered: Any) -> Any:
    """The planned object with each value the plan could not know (`output<string>`, e.g. a public key
    made at `pulumi up`) taken from the rendered one, when the rendered one has a value there."""
    if planned == UNKNOWN and isinstance(rendered, str) and rendered:
        return rendered
    if isinstance(planned, dict) and isinstance(rendered, dict):
        return {k: with_known(v, rendered.get(k)) for k, v in planned.items()}
    if isinstance(planned, list) and isinstance(rendered, list) and len(planned) == len(rendered):
        return [with_known(p, r) for p, r in zip(planned, rendered, strict=True)]
    return planned


def test_up_in_gitops_mode_writes_what_the_plan_writes(tmp_path: Path) -> None:
    raw = stack_raw("dev")
    raw["github"]["enabled"] = False
    directory = tmp_path / "manifests"
    raw["kubernetes"].pop("cluster")
    raw["kubernetes"]["gitops"] = {"directory": str(directory)}
    stack_file = write_stack(tmp_path / "Pulumi.dev.yaml", raw)
    scratch = scratch_stack("dev", tmp_path / "engine", stack_file)
    up = scratch.run(*UP)
    assert up.returncode == 0 and up.result() == "succeeded", up.output[-4000:]
    plan = tmp_path / "plan"
    planned = roadbike("plan", "--stack", "dev", "--config-file", str(scratch.stack_file), "--out", str(plan))
    assert planned.returncode == 0, planned.stdout + planned.stderr

    rendered = {}
    for path in sorted(directory.rglob("*.yaml")):
        for document in yaml.load_all(path.read_text(), Loader=GoYamlLoader):
            rendered[key(document)] = document
    expected = {key(m): m for m in planned_manifests(plan)}
    assert set(rendered) == set(expected)
    assert not [k for k in expected if k[0] == "Secret"]  # never in clear in a Git repository
    for name, manifest in expected.items():
        assert rendered[name] == with_known(manifest, rendered[name]), name
    # The key pairs' public keys were made by `pulumi up`: the rendered policies hold real PEM keys.
    keys = [m for m in rendered.values() if m["kind"] == "ClusterImagePolicy" and "key" in str(m["spec"])]
    assert keys and all("BEGIN PUBLIC KEY" in yaml.safe_dump(m["spec"]) for m in keys)
