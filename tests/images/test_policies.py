"""Image policies through the real pack over the Analyzer protocol, and `roadbike plan` refusing."""

from __future__ import annotations

from pathlib import Path

from components.registry import manifests as registry
from roadbike.analyzer import PolicyPackProcess
from tests.helpers import analyze_resources, stack_raw, violated
from tests.policy_inputs import HOST, REPOSITORY, build, deployment, multi_arch, oci_registry, plan_violations


def test_images_in_the_stack_registry_pass(pack: PolicyPackProcess) -> None:
    component = oci_registry()
    own = deployment(registry.REGISTRY_IMAGE, parent=component.urn, name="registry")
    result = analyze_resources(pack, [component, own, build(), multi_arch()])
    assert violated(result, "images-from-stack-registry") == []


def test_images_elsewhere_violate(pack: PolicyPackProcess) -> None:
    foreign_build = build(tags=["docker.io/acme/svc:1.0.0"])
    foreign_pod = deployment("ghcr.io/acme/svc@sha256:" + "a" * 64)
    result = analyze_resources(pack, [oci_registry(), foreign_build, foreign_pod])
    messages = violated(result, "images-from-stack-registry")
    assert len(messages) == 2
    assert any("docker.io/acme/svc:1.0.0" in m for m in messages)
    assert any("ghcr.io/acme/svc@sha256:" in m and HOST in m for m in messages)


def test_both_platforms_pass(pack: PolicyPackProcess) -> None:
    result = analyze_resources(pack, [build(), multi_arch(builds=True, platforms=["linux/amd64"])])
    assert violated(result, "image-multi-arch") == []


def test_one_platform_violates(pack: PolicyPackProcess) -> None:
    result = analyze_resources(
        pack, [build(platforms=["linux/amd64"]), multi_arch(platforms=["linux/arm64"])]
    )
    messages = violated(result, "image-multi-arch")
    assert len(messages) == 2
    assert any("add linux/arm64" in m for m in messages)
    assert any("add linux/amd64" in m for m in messages)


def test_version_tags_and_digests_pass(pack: PolicyPackProcess) -> None:
    pinned = deployment(registry.REGISTRY_IMAGE)
    result = analyze_resources(pack, [build(), multi_arch(), pinned])
    assert violated(result, "image-tag-immutable") == []


def test_latest_and_untagged_violate(pack: PolicyPackProcess) -> None:
    result = analyze_resources(
        pack, [build(tags=[f"{REPOSITORY}:latest"]), deployment(f"{REPOSITORY}"), build(tags=[])]
    )
    messages = violated(result, "image-tag-immutable")
    assert any(f"{REPOSITORY}:latest" in m for m in messages)
    assert any(m.startswith(f"Deployment 'app' uses mutable references {REPOSITORY}:") for m in messages)
    assert any("has no tag" in m for m in messages)


def test_plan_of_a_single_platform_exits_1(tmp_path: Path) -> None:
    raw = stack_raw("dev")
    raw["services"][1]["platforms"] = ["linux/amd64"]
    code, policies, output = plan_violations(tmp_path, raw)
    assert code == 1, output
    assert "image-multi-arch" in policies
