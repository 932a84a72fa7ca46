"""GitOps mode for real: `pulumi up` writes the manifests (the provider's renderYamlToDirectory) and they
are the objects `roadbike plan` writes under k8s/, content for content."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.engine.real_engine import scratch_stack
from tests.helpers import roadbike, stack_raw, write_stack
from tests.kubernetes.apiserver import GoYamlLoader
from tests.kubernetes.test_up import UP, key, planned_manifests, with_known


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
