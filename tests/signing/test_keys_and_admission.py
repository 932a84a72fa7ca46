"""Cosign keys: the exact cosign format, the dynamic provider, CosignKeys under mocks, keyless identities."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import dill
import nacl.secret
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime.rpc import UNKNOWN

from components.github.release_workflow import release_workflow_path
from components.protection import KEY_PAIR_TYPE
from components.registry.manifests import REGISTRY_IMAGE
from components.signing import admission, keys
from components.signing import identity as signing_identity
from components.signing.component import CosignKeyPairProvider
from policies.signing import glob_regexp
from roadbike.program import is_secret
from roadbike.redact import redact
from tests.helpers import crd_errors, parse, run_raw, stack_raw

ENVIRONMENT_SECRET = "github:index/actionsEnvironmentSecret:ActionsEnvironmentSecret"
CLUSTER_IMAGE_POLICY = "kubernetes:policy.sigstore.dev/v1beta1:ClusterImagePolicy"
REPOSITORY_FILE = "github:index/repositoryFile:RepositoryFile"
PASSWORD = b"correct horse battery staple"


def pem_document(pem: str, pem_type: str) -> bytes:
    lines = pem.strip().splitlines()
    assert lines[0] == f"-----BEGIN {pem_type}-----"
    assert lines[-1] == f"-----END {pem_type}-----"
    assert all(len(line) <= 64 for line in lines[1:-1])
    return base64.b64decode("".join(lines[1:-1]))


def cosign_decrypt(pem: str, password: bytes) -> ec.EllipticCurvePrivateKey:
    """Independently of the module: scrypt(password, salt, N, r, p, 32) opens the NaCl secretbox."""
    envelope = json.loads(pem_document(pem, "ENCRYPTED SIGSTORE PRIVATE KEY"))
    params = envelope["kdf"]["params"]
    key = hashlib.scrypt(
        password,
        salt=base64.b64decode(envelope["kdf"]["salt"]),
        n=params["N"],
        r=params["r"],
        p=params["p"],
        maxmem=128 * 1024 * 1024,
        dklen=32,
    )
    box = nacl.secret.SecretBox(key)
    der = box.decrypt(base64.b64decode(envelope["ciphertext"]), base64.b64decode(envelope["cipher"]["nonce"]))
    private_key = serialization.load_der_private_key(der, password=None)
    assert isinstance(private_key, ec.EllipticCurvePrivateKey)
    return private_key


@pytest.fixture(scope="module")
def generated() -> keys.CosignKeyPair:
    return keys.generate_key_pair(PASSWORD)


def test_generated_key_decrypts_signs_and_verifies(generated: keys.CosignKeyPair) -> None:
    private_key = cosign_decrypt(generated.private_key_pem, PASSWORD)
    assert private_key.curve.name == "secp256r1"
    payload = b'{"critical":{"type":"cosign container image signature"}}'
    signature = private_key.sign(payload, ec.ECDSA(hashes.SHA256()))
    public_key = serialization.load_pem_public_key(generated.public_key_pem.encode())
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        public_key.verify(signature, payload + b" ", ec.ECDSA(hashes.SHA256()))


def test_envelope_is_cosigns_exact_format(generated: keys.CosignKeyPair) -> None:
    raw = pem_document(generated.private_key_pem, "ENCRYPTED SIGSTORE PRIVATE KEY")
    envelope = json.loads(raw)
    assert list(envelope) == ["kdf", "cipher", "ciphertext"]
    assert envelope["kdf"]["name"] == "scrypt"
    assert envelope["kdf"]["params"] == {"N": 65536, "r": 8, "p": 1}
    assert len(base64.b64decode(envelope["kdf"]["salt"])) == 32
    assert envelope["cipher"]["name"] == "nacl/secretbox"
    assert len(base64.b64decode(envelope["cipher"]["nonce"])) == 24
    assert b" " not in raw  # Go's json.Marshal writes no spaces
    der = pem_document(generated.public_key_pem, "PUBLIC KEY")
    assert (
        serialization.load_der_public_key(der).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == der
    )
    assert generated.fingerprint == hashlib.sha256(der).hexdigest()


def test_module_decrypt_matches_and_refuses_a_wrong_password(generated: keys.CosignKeyPair) -> None:
    key = keys.decrypt_private_key(generated.private_key_pem, PASSWORD)
    assert keys.public_key_pem(key) == generated.public_key_pem
    with pytest.raises(keys.CosignKeyError, match="wrong password"):
        keys.decrypt_private_key(generated.private_key_pem, b"not the password")


def test_decrypt_refuses_parameters_cosign_refuses() -> None:
    stand_in = keys.stand_in_key_pair("weak")  # N=1024: outside cosign's accepted set
    with pytest.raises(keys.CosignKeyError, match="unsupported scrypt parameters N=1024"):
        keys.decrypt_private_key(stand_in.private_key_pem, b"roadbike-plan-stand-in")
    with pytest.raises(keys.CosignKeyError, match="PEM"):
        keys.decrypt_private_key(stand_in.public_key_pem, b"x")


def test_key_pairs_are_a_function_of_their_entropy() -> None:
    first = keys.key_pair_from_entropy(b"pw", keys.seeded_entropy("a"), n=1024)
    again = keys.key_pair_from_entropy(b"pw", keys.seeded_entropy("a"), n=1024)
    other = keys.key_pair_from_entropy(b"pw", keys.seeded_entropy("b"), n=1024)
    assert first == again
    assert first.public_key_pem != other.public_key_pem
    assert keys.stand_in_key_pair("x") == keys.stand_in_key_pair("x")


def test_keyless_identity_matches_only_the_release_workflow_on_a_version_tag() -> None:
    config = parse(stack_raw("prod"))
    service = config.services[0]
    identity = signing_identity.keyless_identity(config, service)
    assert identity["issuer"] == "https://token.actions.githubusercontent.com"
    pattern = re.compile(identity["identity"])
    workflow = release_workflow_path(config)
    assert workflow == ".github/workflows/release-prod.yml"
    base = f"https://github.com/acme/{service.repository}/{workflow}"
    assert pattern.match(f"{base}@refs/tags/v1.4.2")
    assert pattern.match(f"{base}@refs/tags/v2.0.0-rc.1")
    assert not pattern.match(f"{base}@refs/heads/main")
    assert not pattern.match(f"https://github.com/evil/{service.repository}/{workflow}@refs/tags/v1.0.0")
    assert not pattern.match(base.replace("release-prod.yml", "ci.yml") + "@refs/tags/v1.0.0")
    for other_tier in ("release-dev.yml", "release-staging.yml", "release.yml"):
        assert not pattern.match(base.replace("release-prod.yml", other_tier) + "@refs/tags/v1.0.0")
    assert not pattern.match(base.replace("github.com", "githubXcom") + "@refs/tags/v1.0.0")


def test_dynamic_provider_creates_once_and_replaces_only_on_a_new_password() -> None:
    provider = CosignKeyPairProvider()
    result = provider.create({"service": "orders-api", "password": "pw"})
    assert result.outs is not None
    assert result.id == keys.public_key_fingerprint(result.outs["publicKey"])
    key = cosign_decrypt(result.outs["privateKey"], b"pw")
    assert keys.public_key_pem(key) == result.outs["publicKey"]
    olds = {**result.outs, "__provider": "old build"}
    unchanged = provider.diff(
        result.id, olds, {"service": "orders-api", "password": "pw", "__provider": "new"}
    )
    assert unchanged.changes is False and unchanged.replaces == []
    rotated = provider.diff(result.id, olds, {"service": "orders-api", "password": "pw2"})
    assert rotated.changes is True and rotated.replaces == ["password"]
    kept = provider.update(result.id, olds, {"service": "orders-api", "password": "pw"})
    assert kept.outs == result.outs


def test_dynamic_provider_survives_serialization() -> None:
    restored = dill.loads(base64.b64decode(serialize_provider(CosignKeyPairProvider())))
    assert type(restored) is CosignKeyPairProvider
    assert serialize_provider(CosignKeyPairProvider()) == serialize_provider(CosignKeyPairProvider())


PROVIDER_HOST = """
import base64, json, sys
import dill
provider = dill.loads(base64.b64decode(sys.stdin.read()))
result = provider.create({"service": "svc", "password": "correct horse battery"})
print(json.dumps({"id": result.id, "publicKey": result.outs["publicKey"]}))
"""


def test_the_serialized_provider_creates_a_key_pair_in_a_fresh_process(tmp_path: Path) -> None:
    # As the engine's dynamic provider host does: a new interpreter, elsewhere, given only the serialized
    # provider; it must find its code and create a key pair.
    result = subprocess.run(
        [sys.executable, "-c", PROVIDER_HOST],
        input=serialize_provider(CosignKeyPairProvider()),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["publicKey"].startswith("-----BEGIN PUBLIC KEY-----")
    assert created["id"]


def test_cosign_keys_under_mocks_put_private_parts_only_in_release_secrets() -> None:
    raw = stack_raw("dev")
    run = run_raw(raw, stack="dev")
    config = parse(raw)
    pairs = [r for r in run.resources if r.type == KEY_PAIR_TYPE]
    assert len(pairs) == len(config.services)
    for pair in pairs:
        assert is_secret(pair.inputs["__provider"])
        assert is_secret(pair.inputs["password"])
    secrets = [r for r in run.resources if r.type == ENVIRONMENT_SECRET and "cosign" in r.name]
    by_name: dict[str, list[str]] = {}
    for secret in secrets:
        assert secret.inputs["environment"] == config.environment
        assert is_secret(secret.inputs["value"])
        by_name.setdefault(secret.inputs["secretName"], []).append(secret.inputs["repository"])
    repositories = sorted(s.repository for s in config.services)
    assert {k: sorted(v) for k, v in by_name.items()} == {
        "COSIGN_PRIVATE_KEY": repositories,
        "COSIGN_PASSWORD": repositories,
    }
    [private] = [s for s in secrets if s.inputs["secretName"] == "COSIGN_PRIVATE_KEY"][:1]
    assert private.inputs["value"]["value"] == UNKNOWN  # the key pair is made at `pulumi up`
    everything = json.dumps([redact(r.inputs) for r in run.resources]) + json.dumps(redact(run.outputs))
    assert "PRIVATE KEY" not in everything


def test_public_key_output_feeds_the_admission_policy() -> None:
    run = run_raw(stack_raw("dev"), stack="dev")
    services = run.outputs["services"]
    policies = {
        r.inputs["metadata"]["name"]: r.inputs for r in run.resources if r.type == CLUSTER_IMAGE_POLICY
    }
    for name, outputs in services.items():
        assert outputs["signing"]["mode"] == "keypair"
        public_key = outputs["signing"]["publicKey"]
        assert not is_secret(public_key)
        assert public_key == UNKNOWN  # never a stand-in key: the pair is made at `pulumi up`
        policy = policies[f"delivery-dev-{name}"]
        [authority] = policy["spec"]["authorities"]
        assert authority["key"]["data"] == public_key
        [pair] = [r for r in run.resources if r.type == KEY_PAIR_TYPE and r.name == f"{name}-cosign-key-pair"]
        [admission] = [
            r for r in run.resources if r.type == CLUSTER_IMAGE_POLICY and r.name == f"{name}-admission"
        ]
        assert pair.urn in admission.dependencies


def test_keyless_stack_has_no_keys_and_outputs_the_identity() -> None:
    raw = stack_raw("prod")
    run = run_raw(raw, stack="prod")
    config = parse(raw)
    assert not [r for r in run.resources if r.type == KEY_PAIR_TYPE]
    assert not [r for r in run.resources if r.type == ENVIRONMENT_SECRET and "cosign" in r.name]
    for service in config.services:
        output = run.outputs["services"][service.name]["signing"]
        assert output == {"mode": "keyless", **signing_identity.keyless_identity(config, service)}


def test_keyless_identity_is_the_tier_release_workflow_the_stack_commits() -> None:
    run = run_raw(stack_raw("prod"), stack="prod")
    config = parse(stack_raw("prod"))
    policies = {
        r.inputs["metadata"]["name"]: r.inputs for r in run.resources if r.type == CLUSTER_IMAGE_POLICY
    }
    committed = [r.inputs for r in run.resources if r.type == REPOSITORY_FILE]
    for service in config.services:
        [authority] = policies[f"delivery-prod-{service.name}"]["spec"]["authorities"]
        [identity] = authority["keyless"]["identities"]
        assert identity["subjectRegExp"] == run.outputs["services"][service.name]["signing"]["identity"]
        pattern = re.compile(identity["subjectRegExp"])
        signers = [
            f["file"]
            for f in committed
            if pattern.match(f"https://github.com/acme/{f['repository']}/{f['file']}@refs/tags/v1.0.0")
        ]
        assert signers == [".github/workflows/release-prod.yml"]


def test_plan_never_writes_private_key_material(plans: dict[str, tuple[Path, Any]]) -> None:
    out, result = plans["dev"]
    assert result.returncode == 0, result.stdout + result.stderr
    texts = [result.stdout, result.stderr] + [p.read_text() for p in out.rglob("*") if p.is_file()]
    assert not [t for t in texts if "PRIVATE KEY" in t]
    plan = json.loads((out / "plan.json").read_text())
    public_key = plan["outputs"]["services"]["go-http-server"]["signing"]["publicKey"]
    assert public_key == "output<string>"  # as `pulumi preview` shows it, never a made-up key


# ClusterImagePolicy: policy-controller's v1beta1 schema (config/300-clusterimagepolicy.yaml upstream,
# fetched by `make crds`), and what its webhook checks beyond it: modes, signature formats, globs.
POLICY_CONTROLLER_GLOB = re.compile(r"^[a-zA-Z0-9-_:\/\*\.@]+$")


def check_cluster_image_policy(manifest: dict) -> None:
    assert (
        manifest["apiVersion"] == "policy.sigstore.dev/v1beta1" and manifest["kind"] == "ClusterImagePolicy"
    )
    assert "namespace" not in manifest["metadata"]  # cluster-scoped
    assert crd_errors(manifest) == []
    spec = manifest["spec"]
    assert spec["mode"] in ("enforce", "warn")
    assert all(POLICY_CONTROLLER_GLOB.match(image["glob"]) for image in spec["images"])
    for authority in spec["authorities"]:
        assert authority.get("signatureFormat", "legacy") in ("legacy", "bundle")


def test_cluster_image_policies_validate_against_the_upstream_schema() -> None:
    for stack in ("dev", "prod"):
        config = parse(stack_raw(stack))
        for service in config.services:
            check_cluster_image_policy(admission.service_image_policy(config, service, "PEM"))
        check_cluster_image_policy(admission.pinned_image_policy(config, "registry", REGISTRY_IMAGE))
    keyless = admission.service_image_policy(parse(stack_raw("prod")), parse(stack_raw("prod")).services[0])
    [authority] = keyless["spec"]["authorities"]
    assert authority["keyless"]["identities"][0]["issuer"] == signing_identity.GITHUB_OIDC_ISSUER
    assert authority["ctlog"] == {"url": signing_identity.REKOR_URL}


def test_globs_match_only_the_services_repository() -> None:

    config = parse(stack_raw("dev"))
    policy = admission.service_image_policy(config, config.services[0], "PEM")
    patterns = [glob_regexp(image["glob"]) for image in policy["spec"]["images"]]
    repository = "registry.delivery-dev.svc.cluster.local:5000/acme/go-http-server"
    for name in (f"{repository}:1.4.2", f"{repository}@sha256:{'a' * 64}"):
        assert any(p.match(name) for p in patterns), name
    for name in (f"{repository}-evil:1.4.2", "docker.io/acme/go-http-server:1.4.2", f"{repository}/sub:1"):
        assert not any(p.match(name) for p in patterns), name
    pinned = admission.pinned_image_policy(config, "registry", REGISTRY_IMAGE)
    [glob] = [image["glob"] for image in pinned["spec"]["images"]]
    digest = REGISTRY_IMAGE.split("@")[1]
    assert glob == f"index.docker.io/library/registry@{digest}"
