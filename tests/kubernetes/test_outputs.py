"""The stack outputs consumed for real, after the real `pulumi up` of dev and prod (tests/kubernetes/test_up.py).

`roadbike verify` reads the JSON the real `pulumi stack output --json` printed: with `--show-secrets`, its
rules check passes against the real Prometheus loaded with the PrometheusRule objects read back from the
API server; without it, verify refuses the masked password (exit 2). The service team's program
(examples/service-team) reads the same outputs through a StackReference on the platform's backend and
deploys from them: its image, its signing identity, its registry pull secret.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from roadbike.verify import CHECKS, VerifyOptions, load_input
from tests.engine.test_conformance import REGISTRY_PASSWORD
from tests.helpers import roadbike
from tests.kubernetes.apiserver import ApiServer
from tests.kubernetes.outputs import SERVICE, ConsumedOutputs, LiveRegistryRun, prod_on_a_live_registry
from tests.kubernetes.test_up import Lifecycle
from tests.live import prometheus_server

STACKS = ["dev", "prod"]


def consumed(lifecycles: dict[str, Lifecycle], stack: str) -> ConsumedOutputs:
    outputs = lifecycles[stack].outputs
    assert outputs is not None, f"{stack}: the lifecycle read no stack outputs"
    return outputs


def shown(lifecycles: dict[str, Lifecycle], stack: str) -> dict[str, Any]:
    return dict(json.loads(consumed(lifecycles, stack).shown.read_text()))


def password(lifecycles: dict[str, Lifecycle], stack: str) -> str:
    return str(shown(lifecycles, stack)["registry"]["password"])


@pytest.mark.parametrize("stack", STACKS)
def test_the_shown_outputs_hold_the_registry_password_and_every_check_can_read_them(
    lifecycles: dict[str, Lifecycle], stack: str
) -> None:
    outputs = consumed(lifecycles, stack)
    read = load_input(VerifyOptions(outputs=outputs.shown, only=CHECKS, prometheus_url="http://127.0.0.1:9"))
    assert read.registry is not None
    # bare flags: a failing assertion prints its operands
    if stack == "prod":  # set as a secret of the stack; dev's is the generated one
        expected = read.registry.password == REGISTRY_PASSWORD["roadbike:registry.password"]
    else:
        expected = len(read.registry.password or "") == 40 and read.registry.password != "[secret]"
    same = read.registry.password == password(lifecycles, stack)
    assert expected and same
    assert read.namespace == lifecycles[stack].namespace
    services = {s.name: s for s in read.services}
    assert set(services) == {"go-http-server", "orders-api"}
    image = services[SERVICE].image
    assert image is not None and image.repository == f"{read.registry.host}/acme/{SERVICE}"
    assert services[SERVICE].slo is not None and services[SERVICE].slo.rule_groups
    if stack == "dev":
        assert services[SERVICE].public_key and "BEGIN PUBLIC KEY" in services[SERVICE].public_key


@pytest.fixture(scope="module")
def live_registry(cluster: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> LiveRegistryRun:
    return prod_on_a_live_registry(cluster, tmp_path_factory.mktemp("prod-live-registry"))


def test_verify_passes_on_the_real_outputs_against_the_real_registry_they_name(
    live_registry: LiveRegistryRun,
) -> None:
    run = live_registry
    assert run.verify.returncode == 0, run.verify.stdout + run.verify.stderr
    report = json.loads(run.verify.stdout)
    checks = sorted((c["name"], c.get("service") or "") for c in report["checks"])
    assert checks == [
        ("images", "go-http-server"),
        ("images", "orders-api"),
        ("registry", ""),
        ("signatures", "go-http-server"),
        ("signatures", "orders-api"),
    ]
    assert report["passed"] is True and all(c["passed"] for c in report["checks"])
    same = json.loads(run.shown.read_text())["registry"]["password"] == run.password
    shows_password = run.password in run.verify.stdout + run.verify.stderr
    assert same and not shows_password  # bare flags: a failing assertion prints its operands
    assert run.destroy.returncode == 0, run.destroy.output[-4000:]


def deployed_rule_files(run: Lifecycle, into: Path) -> list[Path]:
    """The `groups` of every SLO PrometheusRule (`<service>-slo`) the server holds after the second up, one
    rule file each, as the Prometheus operator writes them (the delivery rules, evaluated once a minute,
    are not the rules check's)."""
    into.mkdir()
    files = []
    for (kind, _, name), live in sorted(run.objects["second up"].items()):
        if kind == "PrometheusRule" and name.endswith("-slo"):
            files.append(into / f"{name}.rules.yml")
            files[-1].write_text(yaml.safe_dump({"groups": live["spec"]["groups"]}))
    return files


@pytest.mark.parametrize("stack", STACKS)
def test_verify_rules_passes_on_the_real_outputs_and_the_deployed_rules(
    lifecycles: dict[str, Lifecycle], stack: str, tmp_path: Path
) -> None:
    run = lifecycles[stack]
    rule_files = deployed_rule_files(run, tmp_path / "rules")
    assert [p.name for p in rule_files] == [f"{SERVICE}-slo.rules.yml", "orders-api-slo.rules.yml"]
    outputs = consumed(lifecycles, stack).shown
    with prometheus_server(tmp_path / "prometheus", rule_files) as prometheus:
        result = roadbike(
            "verify",
            "--outputs",
            str(outputs),
            "--only",
            "rules",
            "--prometheus-url",
            prometheus.url,
            "--json",
        )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] is True
    assert sorted(c["service"] for c in report["checks"]) == ["go-http-server", "orders-api"]
    assert all(c["name"] == "rules" and c["passed"] for c in report["checks"])
    shows_password = password(lifecycles, stack) in result.stdout + result.stderr
    assert not shows_password  # a bare flag: a failing assertion prints its operands


@pytest.mark.parametrize("stack", STACKS)
def test_verify_refuses_the_outputs_printed_without_show_secrets(
    lifecycles: dict[str, Lifecycle], stack: str
) -> None:
    masked = consumed(lifecycles, stack).masked
    assert json.loads(masked.read_text())["registry"]["password"] == "[secret]"
    result = roadbike("verify", "--outputs", str(masked))
    assert result.returncode == 2, result.stdout + result.stderr
    problems = result.stderr.splitlines()
    assert (
        f"error: {masked}: registry.password: is a masked secret; the outputs must be read with "
        "`pulumi stack output --json --show-secrets`"
    ) in problems
    # one line per problem, each naming the file (the stacks have no prometheus.url: the rules check's)
    assert all(line.startswith(f"error: {masked}: ") for line in problems), problems
    assert result.stdout == ""
    shows_password = password(lifecycles, stack) in masked.read_text()
    assert not shows_password


@pytest.mark.parametrize("stack", STACKS)
def test_the_service_team_program_previews_and_deploys_from_the_platform_outputs(
    lifecycles: dict[str, Lifecycle], stack: str
) -> None:
    team = consumed(lifecycles, stack).example
    for step in ("preview", "up", "destroy"):
        assert team[step].returncode == 0, f"{step}: {team[step].output[-4000:]}"
    # the stack, its provider, the Secret, the ConfigMap and the Deployment (the stack reference is read)
    assert team["preview"].changes() == {"create": 5}
    assert team["up"].changes() == team["preview"].changes()
    assert team["destroy"].changes() == {"delete": 5, "discard": 1}  # the stack reference is discarded


@pytest.mark.parametrize("stack", STACKS)
def test_the_service_team_deployment_runs_the_platform_image_with_its_pull_secret(
    lifecycles: dict[str, Lifecycle], stack: str
) -> None:
    image = shown(lifecycles, stack)["services"][SERVICE]["image"]
    deployment = consumed(lifecycles, stack).objects["Deployment"]
    assert deployment is not None
    assert deployment["metadata"]["namespace"] == lifecycles[stack].namespace
    pod = deployment["spec"]["template"]["spec"]
    assert [c["image"] for c in pod["containers"]] == [f"{image['repository']}:{image['tag']}"]
    assert pod["imagePullSecrets"] == [{"name": f"{SERVICE}-registry-pull"}]


@pytest.mark.parametrize("stack", STACKS)
def test_the_service_team_pull_secret_holds_the_platform_registry_credentials(
    lifecycles: dict[str, Lifecycle], stack: str
) -> None:
    registry = shown(lifecycles, stack)["registry"]
    secret = consumed(lifecycles, stack).objects["Secret"]
    assert secret is not None and secret["type"] == "kubernetes.io/dockerconfigjson"
    document = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    login = f"{registry['username']}:{registry['password']}"
    assert list(document["auths"]) == [registry["host"]]
    assert document["auths"][registry["host"]]["username"] == registry["username"]
    # compared as a bare flag, so that a failure does not print the credentials
    credentials = document["auths"][registry["host"]] == {
        "username": registry["username"],
        "password": registry["password"],
        "auth": base64.b64encode(login.encode()).decode(),
    }
    assert credentials, "the pull secret's password or auth is not the platform's registry credentials"


@pytest.mark.parametrize("stack", STACKS)
def test_the_service_team_signing_config_is_the_platform_signing_identity(
    lifecycles: dict[str, Lifecycle], stack: str
) -> None:
    signing = shown(lifecycles, stack)["services"][SERVICE]["signing"]
    config_map = consumed(lifecycles, stack).objects["ConfigMap"]
    assert config_map is not None
    if stack == "dev":
        assert config_map["data"] == {"mode": "keypair", "cosign.pub": signing["publicKey"]}
    else:
        assert signing["mode"] == "keyless" and signing["identity"] and signing["issuer"]
        assert config_map["data"] == {
            "mode": "keyless",
            "issuer": signing["issuer"],
            "identity": signing["identity"],
        }


@pytest.mark.parametrize("stack", STACKS)
def test_the_registry_password_is_never_in_clear_in_the_team_engine_output_or_state(
    lifecycles: dict[str, Lifecycle], stack: str
) -> None:
    outputs = consumed(lifecycles, stack)
    secret = password(lifecycles, stack)
    registry = shown(lifecycles, stack)["registry"]
    auth = base64.b64encode(f"{registry['username']}:{secret}".encode()).decode()
    texts = {step: run.output for step, run in outputs.example.items()}
    texts["state"] = outputs.example_state
    # the names only, never the texts: a failing assertion prints its operands
    assert [name for name, text in texts.items() if secret in text or auth in text] == []
    # the secret did reach the state, encrypted: the stack reference kept the registry output secret
    assert "ciphertext" in outputs.example_state
