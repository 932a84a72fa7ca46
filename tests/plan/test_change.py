"""`roadbike plan --against BASE`: what a change to the stack does, against a plan, a revision, a checkpoint."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from components.protection import KEPT
from roadbike.program import SECRET_SIG, SECRET_SIG_KEY
from tests.helpers import REPO, roadbike, stack_raw, write_stack

RULES = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
GATE = "kubernetes:argoproj.io/v1alpha1:AnalysisTemplate"
DASHBOARD = "kubernetes:core/v1:ConfigMap"
SCHEDULE = "kubernetes:chaos-mesh.org/v1alpha1:Schedule"


def plan_against(
    base: str, raw: dict[str, Any], tmp_path: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    config = write_stack(tmp_path / "Pulumi.dev.yaml", raw)
    out = tmp_path / "plan"
    return roadbike(
        "plan", "--stack", "dev", "--config-file", str(config), "--out", str(out), "--against", base, *extra
    )


def steps(out: Path) -> dict[str, str]:
    """op by URN of every step that is not `same`, the stack's own left out."""
    changes = json.loads((out / "plan.json").read_text())["changes"]
    return {s["urn"]: s["op"] for s in changes["steps"] if "pulumi:pulumi:Stack" not in s["urn"]}


def type_and_name(urn: str) -> tuple[str, str]:
    types, name = urn.split("::")[2:4]
    return types.rsplit("$", 1)[-1], name


def resource_count(plan_dir: Path) -> int:
    return len(json.loads((plan_dir / "plan.json").read_text())["resources"])


def service(raw: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in raw["services"] if s["name"] == name)


def test_an_slo_objective_shows_the_rules_and_gate_as_updated_and_the_dashboard_replaced(
    plans: dict, tmp_path: Path
) -> None:
    raw = stack_raw("dev")
    service(raw, "go-http-server")["slos"][0]["objective"] = 99.9
    result = plan_against(str(plans["dev"][0]), raw, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = tmp_path / "plan"
    changed = {type_and_name(urn): op for urn, op in steps(out).items()}
    assert changed == {
        (RULES, "go-http-server-slo-rules"): "update",
        (GATE, "go-http-server-slo-sli-gate"): "update",
        # pulumi-kubernetes replaces a ConfigMap whose data changes; the dashboard shows the objective
        (DASHBOARD, "go-http-server-slo-dashboard"): "replace",
    }
    tree = result.stdout.split("Previewing update (dev):\n", 1)[1].split("\n\n", 1)[0].splitlines()
    rows = [line for line in tree if line.startswith(" ~ ")]
    assert len(rows) == 2 and all(re.search(r"update +\[diff: ~spec\]$", row) for row in rows), rows
    # Unchanged resources are only counted: the tree holds the header, the stack, the changes' ancestors.
    assert len(tree) == 8 and "orders-api" not in "\n".join(tree), tree
    unchanged = resource_count(out) + 1 - 3  # the stack itself counted, as Pulumi does
    assert f"    ~ 2 to update\n    +- 1 to replace\n    3 changes. {unchanged} unchanged\n" in result.stdout
    summary = (out / "policy/summary.md").read_text()
    assert summary.index("### Change against") < summary.index("No policy violations.")
    assert re.search(r"`spec\.groups\[\d+\]\.rules\[\d+\]\.expr`", summary)
    rules_diff = summary.split("<code>prometheus/go-http-server.rules.yml</code>", 1)[1].split("</details>")[
        0
    ]
    assert re.search(r"^-[ -]*expr: vector\(0\.995\)$", rules_diff, re.M)
    assert re.search(r"^\+[ -]*expr: vector\(0\.999\)$", rules_diff, re.M)
    assert summary.count("<details>") == 7  # the changed artifacts, the folded counts


def test_adding_a_service_only_creates(plans: dict, tmp_path: Path) -> None:
    raw = stack_raw("dev")
    added = json.loads(json.dumps(service(raw, "orders-api")))
    added.update(name="billing-api", repository="billing-api")
    raw["services"].append(added)
    result = plan_against(str(plans["dev"][0]), raw, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    found = steps(tmp_path / "plan")
    assert found and set(found.values()) == {"create"}
    assert all("billing-api" in urn for urn in found)
    base = resource_count(plans["dev"][0]) + 1
    assert re.search(rf"^    \+ \d+ to create\n    \d+ changes\. {base} unchanged$", result.stdout, re.M)


def test_removing_a_chaos_experiment_only_deletes(plans: dict, tmp_path: Path) -> None:
    raw = stack_raw("dev")
    chaos = service(raw, "go-http-server")["chaos"]
    service(raw, "go-http-server")["chaos"] = [c for c in chaos if c["name"] != "pod-kill"]
    result = plan_against(str(plans["dev"][0]), raw, tmp_path, "--diff")
    assert result.returncode == 0, result.stdout + result.stderr
    changed = {type_and_name(urn): op for urn, op in steps(tmp_path / "plan").items()}
    assert changed == {(SCHEDULE, "go-http-server-chaos-pod-kill"): "delete"}
    assert re.search(r"^ -  .*Schedule +go-http-server-chaos-pod-kill +delete$", result.stdout, re.M)
    summary = (tmp_path / "plan/policy/summary.md").read_text()
    assert "+++ /dev/null" in summary and "schedule-go-http-server-chaos-pod-kill.yaml" in summary


def git(*args: str, cwd: Path) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60, check=True).stdout


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone of the committed project, its code planned from the clone itself."""
    target = tmp_path_factory.mktemp("clone") / "roadbike"
    git("clone", "--quiet", "--no-hardlinks", str(REPO), str(target), cwd=REPO)
    return target


def plan_in(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "roadbike.cli", "plan", "--stack", "dev", *args]
    env = {**os.environ, "PYTHONPATH": str(clone)}
    return subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True, timeout=600)


def test_against_a_git_revision_plans_the_committed_stack(clone: Path, tmp_path: Path) -> None:
    stack = clone / "stacks/Pulumi.dev.yaml"
    committed = stack.read_text()
    stack.write_text(committed.replace("objective: 99.5", "objective: 99.9", 1))
    try:
        result = plan_in(clone, "--against", "HEAD", "--out", str(tmp_path / "plan"))
    finally:
        stack.write_text(committed)
    assert result.returncode == 0, result.stdout + result.stderr
    head = git("rev-parse", "--short=7", "HEAD", cwd=clone).strip()
    assert f"Comparing with the base HEAD ({head})" in result.stdout
    assert {type_and_name(u)[0] for u in steps(tmp_path / "plan")} == {RULES, GATE, DASHBOARD}
    assert git("status", "--porcelain", cwd=clone) == ""
    assert git("worktree", "list", "--porcelain", cwd=clone).count("worktree ") == 1


def plan_against_a_broken_base(
    clone: Path, relative: str, old: str, new: str, out: Path
) -> subprocess.CompletedProcess[str]:
    """Commit `relative` with `old` replaced by `new`, plan the file as it was against that commit."""
    path = clone / relative
    text = path.read_text()
    path.write_text(text.replace(old, new, 1))
    git("commit", "--quiet", "-am", f"break {relative}", cwd=clone)
    path.write_text(text)
    try:
        return plan_in(clone, "--against", "HEAD", "--out", str(out))
    finally:
        git("reset", "--quiet", "--hard", "HEAD~1", cwd=clone)


def test_a_base_with_invalid_config_is_shown_and_the_head_still_planned(clone: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan"
    result = plan_against_a_broken_base(
        clone, "stacks/Pulumi.dev.yaml", "version: 1.4.2", "version: v1.4.2", out
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning: the base HEAD (" in result.stdout and "does not plan" in result.stdout
    assert "roadbike:services[0].version: 'v1.4.2' must be SemVer" in result.stdout
    assert f"    + {resource_count(out) + 1} to create" in result.stdout
    assert "roadbike:services[0].version" in (out / "policy/summary.md").read_text()


def test_a_base_that_does_not_plan_is_exit_2(clone: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan"
    result = plan_against_a_broken_base(clone, "__main__.py", "\n", "\nraise SystemExit(7)\n", out)
    assert result.returncode == 2, result.stdout + result.stderr
    assert re.search(r"error: --against HEAD: the base \w{7} does not plan \(exit 7\)", result.stderr)
    assert not out.exists()


@pytest.mark.parametrize(
    ("against", "message"),
    [
        ("no-such-revision", "--against no-such-revision: no such git revision"),
        ("--upload-pack=x", "--against '--upload-pack=x': not a git revision"),
    ],
)
def test_a_revision_that_does_not_exist_is_exit_2(tmp_path: Path, against: str, message: str) -> None:
    out = tmp_path / "plan"
    result = roadbike("plan", "--stack", "dev", "--out", str(out), f"--against={against}")
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_replacing_the_registry_data_is_refused_saying_what_would_be_lost(
    plans: dict, tmp_path: Path
) -> None:
    raw = stack_raw("dev")
    raw["registry"]["storageClass"] = "fast-ssd"
    result = plan_against(str(plans["dev"][0]), raw, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    claim = "kubernetes:core/v1:PersistentVolumeClaim"
    assert steps(tmp_path / "plan") == {
        urn: "replace"
        for urn in steps(tmp_path / "plan")
        if type_and_name(urn) == (claim, "registry-data-claim")
    }
    error = next(line for line in result.stderr.splitlines() if "registry-data-claim" in line)
    assert error.startswith(
        "error: replacing registry-data-claim would lose every image pushed to the registry"
    )
    assert "crane copy" in error and "pulumi state unprotect --stack dev 'urn:pulumi:dev::roadbike::" in error
    refused = json.loads((tmp_path / "plan/plan.json").read_text())["changes"]["refused"]
    assert [(type_and_name(r["urn"]), r["op"]) for r in refused] == [
        ((claim, "registry-data-claim"), "replace")
    ]
    summary = (tmp_path / "plan/policy/summary.md").read_text()
    assert summary.startswith("## :x: roadbike plan `dev`: policy gate passed; the change is refused")
    assert "**Refused**" in summary and "every image pushed to the registry" in summary


def test_every_protected_resource_says_what_it_would_lose(plans: dict) -> None:
    for stack, (out, _result) in plans.items():
        protected = {
            r["type"] for r in json.loads((out / "plan.json").read_text())["resources"] if r.get("protect")
        }
        assert protected <= set(KEPT), (stack, protected - set(KEPT))
    dev = json.loads((plans["dev"][0] / "plan.json").read_text())["resources"]
    assert {r["type"] for r in dev if r.get("protect")} == set(KEPT)


def test_removing_a_service_is_refused_for_its_key_pair(plans: dict, tmp_path: Path) -> None:
    (tmp_path / "dev.json").write_text(json.dumps(checkpoint(plans["dev"][0])))
    raw = stack_raw("dev")
    raw["services"] = [s for s in raw["services"] if s["name"] != "orders-api"]
    result = plan_against(str(tmp_path / "dev.json"), raw, tmp_path, "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    refused = json.loads((tmp_path / "plan/plan.json").read_text())["changes"]["refused"]
    assert sorted(type_and_name(r["urn"]) for r in refused) == [
        ("pulumi-python:dynamic/roadbike:CosignKeyPair", "orders-api-cosign-key-pair"),
        ("random:index/randomPassword:RandomPassword", "orders-api-cosign-password"),
    ]
    assert {r["op"] for r in refused} == {"delete"}
    errors = [d["message"] for d in json.loads(result.stdout)["diagnostics"] if d["severity"] == "error"]
    assert any("no signature made with it verifies any more" in e for e in errors), errors


def checkpoint(plan_dir: Path, stack: str = "dev") -> dict[str, Any]:
    """A `pulumi stack export` of the plan's resources, as the engine writes one (version 3)."""
    plan = json.loads((plan_dir / "plan.json").read_text())
    stack_urn = f"urn:pulumi:{stack}::roadbike::pulumi:pulumi:Stack::roadbike-{stack}"
    secret = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "v1:x"}
    resources = [
        {"urn": stack_urn, "custom": False, "type": "pulumi:pulumi:Stack", "outputs": plan["outputs"]},
        {
            "urn": f"urn:pulumi:{stack}::roadbike::pulumi:providers:kubernetes::default_4_34_2",
            "custom": True,
            "type": "pulumi:providers:kubernetes",
            "inputs": {},
        },
    ]
    for r in plan["resources"]:
        inputs = json.loads(json.dumps(r["inputs"]).replace('"[secret]"', json.dumps(secret)))
        # The engine records the provider's checked inputs: a Secret's stringData as data, an explicit
        # provider's version.
        if r["type"] == "kubernetes:core/v1:Secret":
            inputs["data"] = inputs.pop("stringData")
        if r["type"].startswith("pulumi:providers:"):
            inputs["version"] = version(f"pulumi_{r['type'].rsplit(':', 1)[-1]}")
        resources.append(
            {
                "urn": r["urn"].replace("urn:pulumi:dev::", f"urn:pulumi:{stack}::"),
                "custom": r["custom"],
                "type": r["type"],
                "inputs": {**inputs, "__defaults": []},
                "outputs": {},
                "parent": r["parent"] or stack_urn,
                "provider": r["provider"],
                "dependencies": r["dependencies"],
                **({"protect": True} if r.get("protect") else {}),
            }
        )
    return {"version": 3, "deployment": {"manifest": {"version": "3.272.0"}, "resources": resources}}


def test_against_a_checkpoint_of_the_stack(plans: dict, tmp_path: Path) -> None:
    document = checkpoint(plans["dev"][0])
    namespace = next(r for r in document["deployment"]["resources"] if r["type"].endswith(":Namespace"))
    namespace["inputs"]["metadata"]["labels"]["team"] = "payments"
    namespace["inputs"]["metadata"]["name"] = "delivery-old"
    # `pulumi stack export --show-secrets` writes a secret's plaintext: it must never be shown.
    pull = next(r for r in document["deployment"]["resources"] if r["urn"].endswith("::registry-pull-secret"))
    pull["inputs"]["data"] = {
        SECRET_SIG_KEY: SECRET_SIG,
        "plaintext": json.dumps({".dockerconfigjson": "aHVudGVyMi1vbGQ="}),  # base64 of hunter2-old
    }
    (tmp_path / "dev.json").write_text(json.dumps(document))
    result = plan_against(str(tmp_path / "dev.json"), stack_raw("dev"), tmp_path, "--diff")
    assert result.returncode == 0, result.stdout + result.stderr
    assert {type_and_name(u): op for u, op in steps(tmp_path / "plan").items()} == {
        ("kubernetes:core/v1:Namespace", "delivery-dev"): "replace"
    }
    assert re.search(r"^ \+- .*Namespace +delivery-dev +replace +\[diff: ~metadata\]$", result.stdout, re.M)
    assert '+- metadata.name: "delivery-old" => "delivery-dev"' in result.stdout
    assert '- metadata.labels.team: "payments"' in result.stdout
    assert "v1:x" not in result.stdout
    written = [p.read_text() for p in (tmp_path / "plan").rglob("*") if p.is_file()]
    assert not any(
        s in text for s in ("hunter2", "aHVudGVyMi1vbGQ") for text in [result.stdout, result.stderr, *written]
    )


def test_a_checkpoint_of_another_stack_is_exit_2(plans: dict, tmp_path: Path) -> None:
    (tmp_path / "prod.json").write_text(json.dumps(checkpoint(plans["dev"][0], stack="prod")))
    result = plan_against(str(tmp_path / "prod.json"), stack_raw("dev"), tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "deployment.resources[0].urn: a checkpoint of stack 'prod' of project 'roadbike'" in result.stderr
    assert not (tmp_path / "plan").exists()
