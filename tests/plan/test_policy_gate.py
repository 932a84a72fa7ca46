"""The policy gate as a whole: the insecure fixtures refused by `roadbike plan`, policy config, URNs."""

from __future__ import annotations

import json
from pathlib import Path

from roadbike.analyzer import PolicyPackProcess
from tests.helpers import REPO, analyze_resources, resource, roadbike
from tests.policy_inputs import (
    GITHUB_REPOSITORY,
    NAMESPACE,
    RULESET,
    branch_ruleset,
    namespace,
    plan_violations,
    repo,
)


def test_plan_of_the_insecure_supply_chain_fixture_exits_1(tmp_path: Path) -> None:
    fixture = REPO / "tests/fixtures/Pulumi.insecure-supply-chain.yaml"
    code, policies, output = plan_violations(tmp_path, config=fixture)
    assert code == 1, output
    assert {"registry-https-auth", "image-multi-arch", "service-signing-configured"} <= policies


def test_policy_config_can_lower_enforcement(pack: PolicyPackProcess) -> None:
    result = analyze_resources(
        pack,
        [resource(GITHUB_REPOSITORY, "svc", repo(False)), resource(RULESET, "r", branch_ruleset())],
        {"repository-vulnerability-alerts": "advisory"},
    )
    [violation] = [v for v in result.violations if v.policy == "repository-vulnerability-alerts"]
    assert violation.enforcement_level == "advisory"


def test_resource_violations_name_the_resource_urn(pack: PolicyPackProcess) -> None:
    analyzed = resource(NAMESPACE, "apps", namespace("baseline"))
    result = analyze_resources(pack, [analyzed])
    [violation] = [v for v in result.violations if v.policy == "namespace-pod-security-restricted"]
    assert violation.urn == analyzed.urn


def test_all_in_the_policy_config_sets_every_policy_and_an_entry_of_its_own_overrides_it(
    tmp_path: Path,
) -> None:
    fixture = str(REPO / "tests/fixtures/Pulumi.insecure-supply-chain.yaml")
    lowered = tmp_path / "all-advisory.json"
    lowered.write_text(json.dumps({"all": "advisory"}))
    out = tmp_path / "lowered"
    result = roadbike(
        "plan",
        "--stack",
        "x",
        "--config-file",
        fixture,
        "--policy-pack-config",
        str(lowered),
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    levels = {
        v["enforcementLevel"] for v in json.loads((out / "policy/report.json").read_text())["violations"]
    }
    assert levels == {"advisory"}
    kept = tmp_path / "all-advisory-one-mandatory.json"
    kept.write_text(json.dumps({"all": "advisory", "registry-https-auth": "mandatory"}))
    out = tmp_path / "kept"
    result = roadbike(
        "plan", "--stack", "x", "--config-file", fixture, "--policy-pack-config", str(kept), "--out", str(out)
    )
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads((out / "policy/report.json").read_text())
    assert {v["policy"] for v in report["violations"] if v["enforcementLevel"] == "mandatory"} == {
        "registry-https-auth"
    }
