"""The stack's OCI registry: renderers (strict schemas, restricted pods), a real registry, OciRegistry under mocks."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import requests
import yaml
from pulumi.runtime.rpc import UNKNOWN

from components.config import StackConfig
from components.naming import REGISTRY_PULL_SECRET
from components.registry import manifests as registry
from roadbike.program import is_secret
from tests.helpers import crd_errors, parse, require_tool, run_raw, stack_raw
from tests.live import free_port, running, self_signed_certificate, wait_until

KUBERNETES_VERSION = "1.37.0"
REGISTRY_TYPE = "roadbike:registry:OciRegistry"
# The configuration the registry image ships (/etc/docker/registry/config.yml); the Deployment's
# environment turns it into TLS and htpasswd authentication.
IMAGE_DEFAULT_CONFIG = {
    "version": 0.1,
    "log": {"fields": {"service": "registry"}},
    "storage": {
        "cache": {"blobdescriptor": "inmemory"},
        "filesystem": {"rootdirectory": "/var/lib/registry"},
    },
    "http": {"addr": ":5000", "headers": {"X-Content-Type-Options": ["nosniff"]}},
    "health": {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}},
}


def managed(scheme: str = "https", **registry_keys: Any) -> StackConfig:
    raw = stack_raw("dev")
    raw["registry"] = {"mode": "managed", "scheme": scheme, **registry_keys}
    return parse(raw)


def core_objects(config: StackConfig) -> list[dict[str, Any]]:
    objects = [m for m in registry.managed_manifests(config) if m["kind"] != "Certificate"]
    objects.append(registry.htpasswd_secret_manifest(config, registry.htpasswd_line("roadbike", "$2y$05$x")))
    objects.append(registry.pull_secret_manifest(config, registry.docker_config_json("h:5000", "u", "p")))
    return objects


def kubernetes_validate(tmp_path: Path, objects: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    files = []
    for index, manifest in enumerate(objects):
        path = tmp_path / f"{index}-{manifest['kind'].lower()}.yaml"
        path.write_text(yaml.safe_dump(manifest))
        files.append(str(path))
    command = [require_tool("kubernetes-validate"), "-k", KUBERNETES_VERSION, "--strict", *files]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_core_objects_pass_kubernetes_validate_strict(tmp_path: Path, scheme: str) -> None:
    objects = core_objects(managed(scheme, storageClass="fast-ssd"))
    assert {o["kind"] for o in objects} == {
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
        "NetworkPolicy",
        "Secret",
    }
    result = kubernetes_validate(tmp_path, objects)
    assert result.returncode == 0, result.stdout + result.stderr


def test_strict_validation_catches_a_misplaced_field(tmp_path: Path) -> None:
    deployment = registry.deployment_manifest(managed())
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFilesystem"] = True
    result = kubernetes_validate(tmp_path, [deployment])
    assert result.returncode != 0
    assert "readOnlyRootFilesystem" in result.stdout + result.stderr


def test_certificate_validates_against_the_upstream_schema() -> None:
    """cert-manager's v1 Certificate schema (fetched by `make crds`), unknown fields rejected."""
    certificate = registry.certificate_manifest(managed(host="registry.dev.acme.internal"))
    assert certificate["apiVersion"] == "cert-manager.io/v1"
    assert crd_errors(certificate) == []
    spec = certificate["spec"]
    assert spec["secretName"] == registry.TLS_SECRET
    assert spec["issuerRef"] == {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "roadbike-ca"}
    assert "registry.delivery-dev.svc.cluster.local" in spec["dnsNames"]
    assert "registry.dev.acme.internal" in spec["dnsNames"]
    assert spec["privateKey"]["rotationPolicy"] == "Always"


def test_deployment_is_pinned_and_restricted() -> None:
    deployment = registry.deployment_manifest(managed())
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert "@sha256:" in container["image"] and len(container["image"].rsplit(":", 1)[1]) == 64
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert pod["enableServiceLinks"] is False
    assert pod["automountServiceAccountToken"] is False
    assert {v["name"] for v in pod["volumes"]} == {"data", "auth", "tmp", "tls"}


def test_http_scheme_renders_no_tls() -> None:
    config = managed("http")
    kinds = [m["kind"] for m in registry.managed_manifests(config)]
    assert "Certificate" not in kinds
    [container] = registry.deployment_manifest(config)["spec"]["template"]["spec"]["containers"]
    assert not [e for e in container["env"] if e["name"].startswith("REGISTRY_HTTP_TLS")]
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTP"
    assert registry.registry_props(config)["tls"] is False


def test_network_policy_admits_only_the_registry_port_and_no_egress() -> None:
    policy = registry.network_policy_manifest(managed())["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert "egress" not in policy
    assert policy["ingress"] == [{"ports": [{"protocol": "TCP", "port": 5000}]}]
    assert policy["podSelector"]["matchLabels"] == registry.registry_selector()


def test_docker_config_json_is_what_kubelet_reads() -> None:
    document = json.loads(registry.docker_config_json("registry.example:5000", "ci", "s3cret"))
    entry = document["auths"]["registry.example:5000"]
    assert base64.b64decode(entry["auth"]).decode() == "ci:s3cret"
    assert entry["username"] == "ci" and entry["password"] == "s3cret"


def test_renderers_are_deterministic() -> None:
    assert registry.managed_manifests(managed()) == registry.managed_manifests(managed())


def _environment(container: dict[str, Any], mounts: dict[str, Path], port: int) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in container["env"]:
        value = item["value"]
        for mount_path, local in sorted(mounts.items(), key=lambda m: -len(m[0])):
            if value == mount_path or value.startswith(f"{mount_path}/"):
                value = str(local) + value.removeprefix(mount_path)
                break
        env[item["name"]] = value
    env["REGISTRY_HTTP_ADDR"] = f"127.0.0.1:{port}"
    return env


def test_rendered_configuration_runs_a_real_registry_with_tls_and_auth(tmp_path: Path) -> None:
    """The Deployment's environment on the Debian distribution registry: HTTPS, and 401 without credentials."""
    binary = require_tool("docker-registry")
    config = managed()
    [container] = registry.deployment_manifest(config)["spec"]["template"]["spec"]["containers"]
    mounts = {m["mountPath"]: tmp_path / m["name"] for m in container["volumeMounts"]}
    for local in mounts.values():
        local.mkdir()
    certificate = self_signed_certificate(tmp_path)
    (mounts[registry.TLS_PATH] / "tls.crt").write_bytes(certificate.cert.read_bytes())
    (mounts[registry.TLS_PATH] / "tls.key").write_bytes(certificate.key.read_bytes())
    password = "registry-password"
    bcrypt_hash = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    htpasswd = registry.htpasswd_line("roadbike", bcrypt_hash)
    (mounts[registry.AUTH_PATH] / registry.HTPASSWD_FILE).write_text(htpasswd)
    base_config = tmp_path / "config.yml"
    base_config.write_text(yaml.safe_dump(IMAGE_DEFAULT_CONFIG))
    port = free_port()
    env = _environment(container, mounts, port)
    url = f"https://127.0.0.1:{port}"
    log = tmp_path / "registry.log"
    command = ["env", "-i", *(f"{k}={v}" for k, v in sorted(env.items())), binary, "serve", str(base_config)]
    with running(command, log) as process:
        session = requests.Session()
        session.verify = str(certificate.cert)
        session.trust_env = False
        wait_until(lambda: session.get(f"{url}/", timeout=1).status_code == 200, "registry", process, log)
        assert session.get(f"{url}/v2/", timeout=5).status_code == 401
        assert session.get(f"{url}/v2/", auth=("roadbike", "wrong"), timeout=5).status_code == 401
        assert session.get(f"{url}/v2/", auth=("roadbike", password), timeout=5).status_code == 200
        with pytest.raises(requests.RequestException):
            requests.get(f"http://127.0.0.1:{port}/v2/", timeout=5).raise_for_status()
    assert (mounts[registry.DATA_PATH]).is_dir()


def _registry_children(run: Any) -> dict[str, Any]:
    [component] = [r for r in run.resources if r.type == REGISTRY_TYPE]
    return {r.type.rsplit(":", 1)[-1] + "/" + r.name: r for r in run.resources if r.parent == component.urn}


def test_managed_registry_under_mocks() -> None:
    run = run_raw(stack_raw("dev"), stack="dev")
    [component] = [r for r in run.resources if r.type == REGISTRY_TYPE]
    assert component.inputs["mode"] == "managed" and component.inputs["authentication"] == "htpasswd"
    children = _registry_children(run)
    assert {
        "Deployment/registry-deployment",
        "Service/registry-service",
        "PersistentVolumeClaim/registry-data-claim",
        "NetworkPolicy/registry-network-policy",
        "Certificate/registry-tls-certificate",
        "Secret/registry-htpasswd-secret",
        "Secret/registry-pull-secret",
        "RandomPassword/registry-password",
        "ClusterImagePolicy/delivery-dev-registry-clusterimagepolicy",
    } == set(children)
    htpasswd = children["Secret/registry-htpasswd-secret"].inputs["stringData"]
    assert is_secret(htpasswd)
    assert htpasswd["value"] == UNKNOWN  # made from the password's bcrypt hash, known at `pulumi up`
    assert is_secret(children["Secret/registry-pull-secret"].inputs["stringData"])
    outputs = run.outputs["registry"]
    assert outputs["host"] == "registry.delivery-dev.svc.cluster.local:5000"
    assert outputs["url"] == "https://registry.delivery-dev.svc.cluster.local:5000"
    assert outputs["username"] == "roadbike"
    assert is_secret(outputs["password"])
    assert outputs["pullSecret"] == REGISTRY_PULL_SECRET


def test_external_registry_under_mocks_has_only_the_pull_secret() -> None:
    run = run_raw(stack_raw("prod"), stack="prod", secret_keys=["roadbike:registry"])
    children = _registry_children(run)
    assert set(children) == {"Secret/registry-pull-secret"}
    outputs = run.outputs["registry"]
    assert outputs["host"] == "registry.prod.acme.internal"
    assert outputs["username"] == "roadbike-prod"
    assert is_secret(outputs["password"])
    docker_config = json.loads(
        children["Secret/registry-pull-secret"].inputs["stringData"]["value"][".dockerconfigjson"]
    )
    assert set(docker_config["auths"]) == {"registry.prod.acme.internal"}


def test_release_environment_gets_the_registry_password_as_a_secret() -> None:
    run = run_raw(stack_raw("dev"), stack="dev")
    secrets = {
        (r.inputs["repository"], r.inputs["secretName"]): r.inputs["value"]
        for r in run.resources
        if r.type == "github:index/actionsEnvironmentSecret:ActionsEnvironmentSecret"
    }
    password = secrets[("orders-api", "REGISTRY_PASSWORD")]
    assert is_secret(password)
    assert is_secret(run.outputs["registry"]["password"])
    assert password["value"] == run.outputs["registry"]["password"]["value"]
