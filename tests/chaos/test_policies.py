"""Chaos policies through the real pack over the Analyzer protocol, and `roadbike plan` of prod chaos."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.chaos.schedules import schedule_manifest
from roadbike.analyzer import PolicyPackProcess, PolicyResult, load_policy_config
from tests.helpers import REPO, analyze_resources, parse, resource, roadbike, stack_raw, violated

PROD_CHAOS = REPO / "tests/fixtures/Pulumi.prod-chaos.yaml"

OPT_IN = "chaos-prod-opt-in"
CAP = "chaos-duration-cap"
SCOPED = "chaos-selector-scoped"
FORBID = "chaos-schedule-concurrency-forbid"


def rendered(
    experiment: str = "network-delay", environment: str = "dev", opt_in: dict[str, str] | None = None
) -> dict[str, Any]:
    """A Schedule exactly as the renderer makes it, for the dev stack's go-http-server."""
    raw = stack_raw("dev")
    raw["environment"] = environment
    raw["kubernetes"]["namespace"] = f"delivery-{environment}"  # a namespace names its own environment
    if opt_in is not None:
        raw["services"][0]["chaosOptIn"] = opt_in
    config = parse(raw)
    service = config.services[0]
    [chosen] = [e for e in service.chaos if e.name == experiment]
    return schedule_manifest(config, service, chosen)


def analyze(
    pack: PolicyPackProcess, manifest: dict[str, Any], config: dict[str, Any] | None = None
) -> PolicyResult:
    type_ = f"kubernetes:{manifest['apiVersion']}:{manifest['kind']}"
    return analyze_resources(pack, [resource(type_, manifest["metadata"]["name"], manifest)], config)


def edited(manifest: dict[str, Any], *path: str, value: Any) -> dict[str, Any]:
    """A copy with the value at `path` replaced (None deletes it)."""
    copied = copy.deepcopy(manifest)
    node = copied
    for step in path[:-1]:
        node = node[step]
    if value is None:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return copied


def test_rendered_schedules_pass_every_chaos_policy(pack: PolicyPackProcess) -> None:
    for experiment in ("network-delay", "cpu-stress", "pod-kill"):
        result = analyze(pack, rendered(experiment))
        assert [v for v in result.violations if v.policy.startswith("chaos-")] == [], experiment
        assert {OPT_IN, CAP, SCOPED, FORBID} <= {p.name for p in result.policies}


# chaos-prod-opt-in


def test_prod_schedule_with_opt_in_passes(pack: PolicyPackProcess) -> None:
    manifest = rendered(environment="prod", opt_in={"approval": "CHG-1234", "maxDuration": "5m"})
    assert violated(analyze(pack, manifest), OPT_IN) == []


def test_prod_schedule_without_opt_in_violates(pack: PolicyPackProcess) -> None:
    result = analyze(pack, rendered(environment="prod"))
    [message] = violated(result, OPT_IN)
    assert "'go-http-server-chaos-network-delay' runs in the 'prod' environment without an opt-in" in message
    assert "chaosOptIn" in message
    [violation] = [v for v in result.violations if v.policy == OPT_IN]
    assert violation.enforcement_level == "mandatory"


def test_prod_experiment_longer_than_its_opt_in_violates(pack: PolicyPackProcess) -> None:
    manifest = rendered(environment="prod", opt_in={"approval": "CHG-1234", "maxDuration": "30s"})
    [message] = violated(analyze(pack, manifest), OPT_IN)
    assert "for 60s, longer than its opt-in CHG-1234 allows (30s)" in message


def test_chaos_without_environment_label_counts_as_prod(pack: PolicyPackProcess) -> None:
    manifest = rendered()
    del manifest["metadata"]["labels"]["roadbike.dev/environment"]
    [message] = violated(analyze(pack, manifest), OPT_IN)
    assert "no roadbike.dev/environment label, so it counts as prod" in message


# chaos-duration-cap


def test_duration_within_cap_passes(pack: PolicyPackProcess) -> None:
    manifest = edited(rendered(), "spec", "networkChaos", "duration", value="10m")
    assert violated(analyze(pack, manifest), CAP) == []


def test_duration_over_cap_violates(pack: PolicyPackProcess) -> None:
    manifest = edited(rendered("cpu-stress"), "spec", "stressChaos", "duration", value="10m1s")
    [message] = violated(analyze(pack, manifest), CAP)
    assert "runs its StressChaos for '10m1s'; the cap is 10m" in message


def test_the_duration_hint_works_when_pasted(pack: PolicyPackProcess, tmp_path: Path) -> None:
    manifest = edited(rendered("cpu-stress"), "spec", "stressChaos", "duration", value="10m1s")
    [message] = violated(analyze(pack, manifest), CAP)
    command = message.split("echo ", 1)[1].split(", then", 1)[0]
    written = subprocess.run(["bash", "-c", f"echo {command}"], cwd=tmp_path, timeout=10, check=True)
    assert written.returncode == 0 and "--policy-pack-config policy-config.json" in message
    settings = load_policy_config(tmp_path / "policy-config.json")
    assert violated(analyze(pack, manifest, settings), CAP) == []


def test_missing_duration_violates_except_for_one_shot_pod_kill(pack: PolicyPackProcess) -> None:
    unbounded = edited(rendered(), "spec", "networkChaos", "duration", value=None)
    [message] = violated(analyze(pack, unbounded), CAP)
    assert "has no duration, so its NetworkChaos runs until deleted" in message
    assert violated(analyze(pack, rendered("pod-kill")), CAP) == []
    failure = edited(rendered("pod-kill"), "spec", "podChaos", "action", value="pod-failure")
    assert violated(analyze(pack, failure), CAP)


def test_duration_cap_is_a_policy_config_property(pack: PolicyPackProcess) -> None:
    long = edited(rendered(), "spec", "networkChaos", "duration", value="15m")
    assert (
        violated(analyze(pack, long, {CAP: {"enforcementLevel": "mandatory", "maxDuration": "20m"}}), CAP)
        == []
    )
    short_cap = {CAP: {"enforcementLevel": "mandatory", "maxDuration": "30s"}}
    [message] = violated(analyze(pack, rendered(), short_cap), CAP)
    assert "the cap is 30s" in message
    # A cap that is no Go duration breaks the policy's config schema: refused before any analysis.
    with pytest.raises(
        ValueError, match=r"chaos-duration-cap\.maxDuration: 'ten minutes' is not valid: .*Go duration"
    ):
        analyze(pack, rendered(), {CAP: {"maxDuration": "ten minutes"}})


# chaos-selector-scoped


def test_bare_chaos_kind_scoped_to_its_service_passes(pack: PolicyPackProcess) -> None:
    schedule = rendered("pod-kill")
    bare = {
        "apiVersion": "chaos-mesh.org/v1alpha1",
        "kind": "PodChaos",
        "metadata": schedule["metadata"],
        "spec": schedule["spec"]["podChaos"],
    }
    assert violated(analyze(pack, bare), SCOPED) == []


SELECTOR = ("spec", "networkChaos", "selector")


def test_all_namespaces_violates(pack: PolicyPackProcess) -> None:
    manifest = edited(rendered(), *SELECTOR, "namespaces", value=None)
    [message] = violated(analyze(pack, manifest), SCOPED)
    assert "selects namespaces [] instead of exactly its own ['delivery-dev']" in message


def test_another_namespace_violates(pack: PolicyPackProcess) -> None:
    manifest = edited(rendered(), *SELECTOR, "namespaces", value=["delivery-dev", "kube-system"])
    assert violated(analyze(pack, manifest), SCOPED)


def test_empty_selector_violates(pack: PolicyPackProcess) -> None:
    manifest = edited(rendered(), *SELECTOR, value={})
    [message] = violated(analyze(pack, manifest), SCOPED)
    assert "has an empty selector" in message


def test_selector_without_labels_violates(pack: PolicyPackProcess) -> None:
    manifest = edited(rendered(), *SELECTOR, "labelSelectors", value=None)
    [message] = violated(analyze(pack, manifest), SCOPED)
    assert "selects no labels" in message


def test_selecting_another_service_violates(pack: PolicyPackProcess) -> None:
    manifest = edited(rendered(), *SELECTOR, "labelSelectors", value={"app": "orders-api"})
    [message] = violated(analyze(pack, manifest), SCOPED)
    assert "selects app='orders-api', not its own service app='go-http-server'" in message


def test_network_target_in_another_namespace_violates(pack: PolicyPackProcess) -> None:
    schedule = rendered()
    spec = dict(schedule["spec"]["networkChaos"], direction="both")
    spec["target"] = {
        "mode": "all",
        "selector": {"namespaces": ["payments"], "labelSelectors": {"app": "db"}},
    }
    bare = {
        "apiVersion": "chaos-mesh.org/v1alpha1",
        "kind": "NetworkChaos",
        "metadata": schedule["metadata"],
        "spec": spec,
    }
    messages = violated(analyze(pack, bare), SCOPED)
    assert any(
        m.startswith("NetworkChaos 'go-http-server-chaos-network-delay' target selects namespaces")
        for m in messages
    )


# chaos-schedule-concurrency-forbid


def test_forbid_passes(pack: PolicyPackProcess) -> None:
    assert violated(analyze(pack, rendered("cpu-stress")), FORBID) == []


def test_allow_violates(pack: PolicyPackProcess) -> None:
    manifest = edited(rendered(), "spec", "concurrencyPolicy", value="Allow")
    [message] = violated(analyze(pack, manifest), FORBID)
    assert "concurrencyPolicy 'Allow'" in message


def test_implicit_concurrency_policy_violates(pack: PolicyPackProcess) -> None:
    manifest = edited(rendered(), "spec", "concurrencyPolicy", value=None)
    assert violated(analyze(pack, manifest), FORBID)


# the whole gate


def chaos_violations(out: Path) -> list[dict[str, Any]]:
    report = json.loads((out / "policy/report.json").read_text())
    return [v for v in report["violations"] if v["policy"].startswith("chaos-")]


def test_plan_of_the_prod_chaos_fixture_exits_1(tmp_path: Path) -> None:
    out = tmp_path / "plan"
    result = roadbike("plan", "--stack", "prod-chaos", "--config-file", str(PROD_CHAOS), "--out", str(out))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"[mandatory]  {OPT_IN}" in result.stdout
    refused = sorted(v["message"].split("'")[1] for v in chaos_violations(out))
    assert refused == ["go-http-server-chaos-network-delay", "go-http-server-chaos-pod-kill"]
    assert {v["policy"] for v in chaos_violations(out)} == {OPT_IN}


def committed_prod_with_chaos(path: Path, opt_in: dict[str, str] | None) -> Path:
    """The committed prod stack (which passes the gate) plus the fixture's chaos, `secure:` values kept."""
    document = yaml.safe_load((REPO / "stacks/Pulumi.prod.yaml").read_text())
    fixture = yaml.safe_load(PROD_CHAOS.read_text())["config"]["roadbike:services"][0]
    service = document["config"]["roadbike:services"][0]
    service["chaos"] = fixture["chaos"]
    if opt_in is not None:
        service["chaosOptIn"] = opt_in
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_chaos_alone_fails_a_prod_plan_and_the_opt_in_lets_it_pass(tmp_path: Path) -> None:
    refused, allowed = tmp_path / "refused", tmp_path / "allowed"
    without = committed_prod_with_chaos(tmp_path / "without.yaml", None)
    result = roadbike("plan", "--stack", "prod-variant", "--config-file", str(without), "--out", str(refused))
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads((refused / "policy/report.json").read_text())
    assert {v["policy"] for v in report["violations"]} == {OPT_IN}, "refused for chaos and nothing else"

    opted_in = committed_prod_with_chaos(
        tmp_path / "opted-in.yaml", {"approval": "CHG-1234", "maxDuration": "2m"}
    )
    result = roadbike(
        "plan", "--stack", "prod-variant", "--config-file", str(opted_in), "--out", str(allowed)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(list((allowed / "k8s" / "delivery-prod").glob("schedule-*.yaml"))) == 2
