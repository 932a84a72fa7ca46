"""Registry policies through the real pack over the Analyzer protocol, and `roadbike plan` refusing."""

from __future__ import annotations

from pathlib import Path

from roadbike.analyzer import PolicyPackProcess
from tests.helpers import analyze_resources, stack_raw, violated
from tests.policy_inputs import oci_registry, plan_violations


def test_https_registry_with_auth_passes(pack: PolicyPackProcess) -> None:
    result = analyze_resources(pack, [oci_registry(), oci_registry("https", "basic")])
    assert violated(result, "registry-https-auth") == []


def test_http_or_anonymous_registry_violates(pack: PolicyPackProcess) -> None:
    [http] = violated(analyze_resources(pack, [oci_registry("http")]), "registry-https-auth")
    assert "without TLS" in http and "scheme to https" in http
    [anonymous] = violated(analyze_resources(pack, [oci_registry("https", "none")]), "registry-https-auth")
    assert "no credentials" in anonymous


def test_plan_of_an_http_registry_exits_1(tmp_path: Path) -> None:
    raw = stack_raw("dev")
    raw["registry"] = {"mode": "managed", "scheme": "http"}
    code, policies, output = plan_violations(tmp_path, raw)
    assert code == 1, output
    assert "registry-https-auth" in policies
    assert "[mandatory]  registry-https-auth" in output
