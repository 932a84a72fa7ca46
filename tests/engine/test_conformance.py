"""`roadbike plan` held to the real `pulumi preview --policy-pack policies` of the same stack.

Both run with `roadbike:github.enabled: false`: the pulumi-github provider cannot be built from its Go
module here (its module is not served, and it builds from a patched Terraform provider), so the GitHub
resources are held to the engine through the plan alone (the last test).
"""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from pulumi.runtime import rpc

from policies.recorder import RECORD_VARIABLE
from roadbike.program import is_secret
from tests.engine.conformance import (
    Difference,
    conformance_problems,
    received,
    received_differences,
    resource_key,
)
from tests.engine.real_engine import Preview, real_preview
from tests.helpers import REPO, roadbike

CLUSTER_SIDE = {"roadbike:github.enabled": "false"}
# The external registry's password, which its operator sets on a real stack (prod and its variants).
REGISTRY_PASSWORD = {"roadbike:registry.password": "stand-in-registry-token"}
# A secret of another program's config: a dynamic provider's default provider holds all of the config.
OTHER_PROGRAM_SECRET = {"other:token": "stand-in-other-token"}
# The stacks and fixtures the engine can preview with the providers built here (see tools/go-tools.txt).
COMMITTED = {stack: REPO / f"stacks/Pulumi.{stack}.yaml" for stack in ("dev", "staging", "prod")}
FIXTURES = {
    name: REPO / f"tests/fixtures/Pulumi.{name}.yaml"
    for name in ("insecure", "insecure-supply-chain", "prod-chaos")
}
PREVIEWED = {**COMMITTED, **FIXTURES}


def _plan(stack: str, preview: Preview, work: Path) -> Path:
    """roadbike plan of the very stack file the preview read, recording what its pack received."""
    out = work / "plan"
    result = roadbike(
        "plan",
        "--stack",
        stack,
        "--config-file",
        str(preview.stack_file),
        "--out",
        str(out),
        env={RECORD_VARIABLE: str(work / "plan-received")},
    )
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return out


@pytest.fixture(scope="module")
def previews(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Preview, Path]]:
    """For each stack: the real preview, and roadbike plan of the very stack file the preview read. Each
    plan runs while the engine previews the next stack (the preview waits on its plugins much of the time)."""
    plans: dict[str, tuple[Preview, Future[Path]]] = {}
    with ThreadPoolExecutor(max_workers=1) as planner:
        for stack, stack_file in PREVIEWED.items():
            work = tmp_path_factory.mktemp(f"engine-{stack}")
            secrets = REGISTRY_PASSWORD if stack.startswith("prod") else None
            if stack == "insecure":
                secrets = OTHER_PROGRAM_SECRET
            preview = real_preview(
                stack, work / "engine", stack_file, CLUSTER_SIDE, secrets, record=work / "engine-received"
            )
            plans[stack] = (preview, planner.submit(_plan, stack, preview, work))
        return {stack: (preview, plan.result()) for stack, (preview, plan) in plans.items()}


@pytest.mark.parametrize("stack", sorted(COMMITTED))
def test_every_committed_stack_previews_with_the_real_engine(
    previews: dict[str, tuple[Preview, Path]], stack: str
) -> None:
    preview, _ = previews[stack]
    assert preview.returncode == 0, preview.output[-3000:]
    assert preview.result() == "succeeded"
    assert preview.violations() == set()
    assert len(preview.resources()) > 20


@pytest.mark.parametrize("fixture", sorted(FIXTURES))
def test_the_insecure_fixtures_are_refused_by_the_engine_as_by_the_plan(
    previews: dict[str, tuple[Preview, Path]], fixture: str
) -> None:
    preview, out = previews[fixture]
    assert preview.returncode != 0 and preview.result() == "failed"
    refused = {policy for policy, level, _ in preview.violations() if level == "mandatory"}
    report = json.loads((out / "policy/report.json").read_text())
    planned = {v["policy"] for v in report["violations"] if v["enforcementLevel"] == "mandatory"}
    assert refused and refused == planned


@pytest.mark.parametrize("stack", sorted(PREVIEWED))
def test_the_plan_agrees_with_the_real_preview(previews: dict[str, tuple[Preview, Path]], stack: str) -> None:
    preview, out = previews[stack]
    assert conformance_problems(preview, out) == []


# Where the properties the pack receives cannot agree, each named: (call, type::name, key path) -> why.
# The plan cannot decrypt a `secure:` value and plans with its stand-in: where the preview is given the
# registry password (prod and its variants), that password and what is made of it differ in value, only
# inside the secret marker.
UNDECRYPTED = "the plan's stand-in for the secure: registry password, the engine's decrypted value"


def received_exceptions(stack: str) -> dict[Difference, str]:
    if stack == "insecure":
        dynamic = "pulumi:providers:pulumi-python::default"
        why = "the plan's stand-in for another program's secure: value, the engine's decrypted value"
        return {
            ("Analyze", dynamic, "other:token.value"): why,
            ("AnalyzeStack", dynamic, "other:token.value"): why,
        }
    if not stack.startswith("prod"):
        return {}
    pull_secret = "kubernetes:core/v1:Secret::registry-pull-secret"
    return dict.fromkeys(
        [
            ("Analyze", pull_secret, "data.value"),
            ("AnalyzeStack", pull_secret, "data.value"),
            ("AnalyzeStack", f"pulumi:pulumi:Stack::roadbike-{stack}", "registry.password.value"),
            ("AnalyzeStack", "roadbike:registry:OciRegistry::registry", "password.value"),
            ("AnalyzeStack", "roadbike:platform:DeliveryPlatform::roadbike", "registry.password.value"),
        ],
        UNDECRYPTED,
    )


@pytest.mark.parametrize("stack", sorted(PREVIEWED))
def test_the_pack_receives_from_the_plan_what_it_receives_from_the_real_preview(
    previews: dict[str, tuple[Preview, Path]], stack: str
) -> None:
    """Per call (Analyze, AnalyzeStack) and URN, the very properties the engine sends the pack: the
    provider's checked inputs to resource policies, each resource's outputs to stack policies (the
    committed stacks, and the fixtures: insecure-supply-chain builds images with docker-build)."""
    _, out = previews[stack]
    work = out.parent
    engine, plan = received(work / "engine-received"), received(work / "plan-received")
    assert len(engine) > 40 and {call for call, _ in engine} == {"Analyze", "AnalyzeStack"}
    differences = received_differences(plan, engine)
    expected = received_exceptions(stack)
    assert set(differences) == set(expected), (
        "\n".join(f"{key}: {how}" for key, how in sorted(differences.items()) if key not in expected)
        or f"no longer differ: {sorted(set(expected) - set(differences))}"
    )
    for call, name, path in expected:  # each one a known value inside the engine's secret marker, both sides
        urn = next(u for c, u in engine if c == call and resource_key(u) == name)
        for side in (plan, engine):
            wrapper = side[(call, urn)]
            for key in path.split(".value.")[0].removesuffix(".value").split("."):
                wrapper = wrapper[key]
            assert is_secret(wrapper) and wrapper["value"] != rpc.UNKNOWN, (call, name, path)


def test_a_resource_on_one_side_only_breaks_conformance(
    previews: dict[str, tuple[Preview, Path]], tmp_path: Path
) -> None:
    preview, out = previews["prod"]
    document = json.loads((out / "plan.json").read_text())
    extra = {**document["resources"][0], "urn": document["resources"][0]["urn"] + "-extra"}
    document["resources"].append(extra)
    mutated = tmp_path / "plan"
    (mutated / "policy").mkdir(parents=True)
    (mutated / "plan.json").write_text(json.dumps(document))
    (mutated / "policy/report.json").write_text((out / "policy/report.json").read_text())
    assert conformance_problems(preview, mutated) == [f"only in the plan: {extra['urn']}"]


def test_a_violation_on_one_side_only_breaks_conformance(previews: dict[str, tuple[Preview, Path]]) -> None:
    preview, out = previews["prod"]
    namespace = next(urn for urn in preview.resources() if "Namespace" in urn)
    event = {
        "policyEvent": {
            "policyName": "namespace-pod-security-restricted",
            "enforcementLevel": "mandatory",
            "resourceUrn": namespace,
        }
    }
    mutated = replace(preview, events=[*preview.events, event])
    assert conformance_problems(mutated, out) == [
        f"violation only in the preview: ('namespace-pod-security-restricted', '{namespace}')"
    ]


def test_the_github_side_is_held_to_the_engine_through_the_plan_alone(tmp_path: Path) -> None:
    """With GitHub on, the plan adds exactly the GitHub side (its resources, its provider, the
    GitHubPipeline components) to what the engine previewed."""
    planned = {}
    for name, settings in (("on", ""), ("off", "    enabled: false\n")):
        text = (
            (REPO / "stacks/Pulumi.prod.yaml")
            .read_text()
            .replace("  roadbike:github:\n", "  roadbike:github:\n" + settings)
        )
        stack_file = tmp_path / f"{name}.yaml"
        stack_file.write_text(text)
        out = tmp_path / name
        assert (
            roadbike(
                "plan", "--stack", "prod", "--config-file", str(stack_file), "--out", str(out)
            ).returncode
            == 0
        )
        planned[name] = {
            r["urn"]: r["type"] for r in json.loads((out / "plan.json").read_text())["resources"]
        }
    assert set(planned["off"]) < set(planned["on"])
    added = {planned["on"][urn] for urn in set(planned["on"]) - set(planned["off"])}
    assert added and all(
        t.startswith(("github:", "pulumi:providers:github", "roadbike:github:")) for t in added
    ), added


def test_a_property_received_differently_breaks_conformance(
    previews: dict[str, tuple[Preview, Path]],
) -> None:
    _, out = previews["dev"]
    engine, plan = received(out.parent / "engine-received"), received(out.parent / "plan-received")
    key = next(k for k in plan if k[0] == "Analyze" and ":core/v1:Namespace::" in k[1])
    plan[key] = {**plan[key], "kind": "Namespaces"}
    name = "kubernetes:core/v1:Namespace::" + key[1].rsplit("::", 1)[-1]
    assert list(received_differences(plan, engine)) == [("Analyze", name, "kind")]
