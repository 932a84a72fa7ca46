"""Signing and admission policies through the real pack over the Analyzer protocol."""

from __future__ import annotations

import pytest
from pulumi.runtime.rpc import UNKNOWN

from roadbike.analyzer import PolicyPackProcess
from roadbike.program import RecordedResource
from tests.helpers import analyze_resources, resource, violated
from tests.policy_inputs import (
    CONFIG_MAP,
    ENVIRONMENT_SECRET,
    ENVIRONMENT_VARIABLE,
    HOST,
    KEY_AUTHORITY,
    KEYLESS_AUTHORITY,
    PRIVATE_KEY,
    image_policy,
    multi_arch,
)


@pytest.mark.parametrize("authority", [KEY_AUTHORITY, KEYLESS_AUTHORITY], ids=["key", "keyless"])
def test_signature_enforced_for_every_service_passes(pack: PolicyPackProcess, authority: dict) -> None:
    result = analyze_resources(pack, [multi_arch(), image_policy(authority)])
    assert violated(result, "service-signing-configured") == []


def test_broad_glob_covers_the_service(pack: PolicyPackProcess) -> None:
    result = analyze_resources(pack, [multi_arch(), image_policy(KEY_AUTHORITY, glob=f"{HOST}/acme/**")])
    assert violated(result, "service-signing-configured") == []


@pytest.mark.parametrize(
    "policies",
    [
        [],
        [image_policy(KEY_AUTHORITY, mode="warn")],
        [image_policy({"name": "anything", "static": {"action": "pass"}})],
        [image_policy(KEY_AUTHORITY, glob=f"{HOST}/acme/other:**")],
    ],
    ids=["no-policy", "warn-only", "static-pass", "other-repository"],
)
def test_unsigned_service_violates(pack: PolicyPackProcess, policies: list[RecordedResource]) -> None:
    [message] = violated(analyze_resources(pack, [multi_arch(), *policies]), "service-signing-configured")
    assert "'svc'" in message and "roadbike:signing.mode" in message


def test_private_key_in_an_actions_secret_passes(pack: PolicyPackProcess) -> None:
    secret = resource(ENVIRONMENT_SECRET, "key", {"secretName": "COSIGN_PRIVATE_KEY", "value": PRIVATE_KEY})
    kube = resource(
        "kubernetes:core/v1:Secret", "tls", {"kind": "Secret", "stringData": {"tls.key": PRIVATE_KEY}}
    )
    result = analyze_resources(pack, [secret, kube])
    assert violated(result, "private-key-in-secrets-only") == []


def test_private_key_anywhere_else_violates(pack: PolicyPackProcess) -> None:
    variable = resource(ENVIRONMENT_VARIABLE, "key", {"variableName": "COSIGN_KEY", "value": PRIVATE_KEY})
    config_map = resource(CONFIG_MAP, "keys", {"kind": "ConfigMap", "data": {"cosign.key": PRIVATE_KEY}})
    messages = violated(analyze_resources(pack, [variable, config_map]), "private-key-in-secrets-only")
    assert len(messages) == 2
    assert any("data.cosign.key" in m for m in messages)
    assert all("PRIVATE KEY-----" not in m for m in messages)


def test_values_unknown_during_preview_leave_the_known_ones_checked(pack: PolicyPackProcess) -> None:
    """A first preview does not know the key pair: the policy checks every value it knows, and the
    engine checks the rest at `pulumi up`; no "can't run during preview" in place of a decision."""
    config_map = resource(
        CONFIG_MAP, "keys", {"kind": "ConfigMap", "data": {"public": UNKNOWN, "cosign.key": PRIVATE_KEY}}
    )
    result = analyze_resources(pack, [config_map])
    [message] = violated(result, "private-key-in-secrets-only")
    assert "data.cosign.key" in message
    assert not any("during preview" in v.message for v in result.violations)
