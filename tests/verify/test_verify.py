"""`roadbike verify` against real servers on 127.0.0.1: a TLS registry with htpasswd auth holding multi-arch
images and cosign signatures, Prometheus loaded with the dev stack's rendered SLO rules, a probed service."""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from roadbike.oci import parse_challenge
from roadbike.probe import ProbeRun, ProbeSample, evaluate_probe, percentile
from roadbike.stack_outputs import ProbeTarget, SloTarget, VerifyOptions
from roadbike.transport import Deadline, HttpFailure, Transport
from roadbike.verify import evaluate_rules, legacy_signature_tag, referrers_tag, verify
from tests.helpers import roadbike, stack_raw
from tests.live import (
    FLAKY_PATH,
    HEALTHY_PATH,
    SLOW_FAILING_PATH,
    Prometheus,
    Registry,
    Service,
    free_port,
    probed_service,
    prometheus_server,
    registry_server,
    token_registry,
)

OWNER = "acme"
BOTH = ["linux/amd64", "linux/arm64"]
DEV_SERVICES = sorted(service["name"] for service in stack_raw("dev")["services"])


# --- fixtures: the rendered rules, and the servers (started once, always stopped) ----------------------


@dataclass(frozen=True)
class RenderedRules:
    plan_dir: Path
    files: dict[str, Path]  # service -> prometheus/<service>.rules.yml

    def slo(self, service: str) -> dict[str, list[str]]:
        """The `slo` outputs of a service, read from its rendered rules file."""
        groups = yaml.safe_load(self.files[service].read_text())["groups"]
        alerts = [rule for group in groups for rule in group["rules"] if "alert" in rule]

        def alerts_of(severity: str) -> list[str]:
            names = [r["alert"] for r in alerts if r.get("labels", {}).get("severity") == severity]
            return sorted(set(names))

        return {
            "ruleGroups": [group["name"] for group in groups],
            "pageAlerts": alerts_of("page"),
            "ticketAlerts": alerts_of("ticket"),
        }


@pytest.fixture(scope="session")
def rendered_rules(plans: dict[str, tuple[Path, Any]]) -> RenderedRules:
    """The dev stack's SLO rule files as `roadbike plan` renders them."""
    out, result = plans["dev"]
    assert result.returncode in (0, 1), result.stderr
    files = {p.name.removesuffix(".rules.yml"): p for p in sorted(out.glob("prometheus/*.rules.yml"))}
    if not files:
        pytest.fail(
            f"`roadbike plan --stack dev` wrote no prometheus/*.rules.yml under {out}: "
            "the verify tests load the stack's rendered SLO rules into Prometheus"
        )
    assert sorted(files) == DEV_SERVICES, f"one rules file per dev service expected, got {sorted(files)}"
    return RenderedRules(plan_dir=out, files=files)


@dataclass(frozen=True)
class Images:
    """What was pushed: repository name -> index digest."""

    digests: dict[str, str]


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with registry_server(tmp_path_factory.mktemp("registry")) as server:
        yield server


@pytest.fixture(scope="session")
def images(registry: Registry) -> Images:
    """Every dev service signed (the first in the legacy form, the others as OCI 1.1 referrers), plus an
    amd64-only image (signed) and an unsigned one."""
    digests: dict[str, str] = {}
    for position, service in enumerate(DEV_SERVICES):
        name = f"{OWNER}/{service}"
        digests[service] = registry.push_index(name, "1.0.0", BOTH)
        if position == 0:
            registry.push_legacy_signature(name, digests[service])
        else:
            registry.push_referrer_signature(
                name, digests[service], registry.manifest_size(name, digests[service])
            )
    digests["amd64-only"] = registry.push_index(f"{OWNER}/amd64-only", "1.0.0", ["linux/amd64"])
    registry.push_legacy_signature(f"{OWNER}/amd64-only", digests["amd64-only"])
    digests["unsigned"] = registry.push_index(f"{OWNER}/unsigned", "1.0.0", BOTH)
    return Images(digests=digests)


@pytest.fixture(scope="session")
def prometheus_with(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[tuple[Path, ...]], Prometheus]]:
    """Prometheus loading the given rule files; one server per set of files, all stopped at the end."""
    stack = contextlib.ExitStack()
    started: dict[tuple[Path, ...], Prometheus] = {}

    def start(files: tuple[Path, ...]) -> Prometheus:
        if files not in started:
            started[files] = stack.enter_context(
                prometheus_server(tmp_path_factory.mktemp("prometheus"), files)
            )
        return started[files]

    with stack:
        yield start


@pytest.fixture(scope="session")
def prometheus(
    prometheus_with: Callable[[tuple[Path, ...]], Prometheus], rendered_rules: RenderedRules
) -> Prometheus:
    return prometheus_with(tuple(rendered_rules.files.values()))


@pytest.fixture(scope="session")
def service() -> Iterator[Service]:
    with probed_service() as server:
        yield server


# --- building outputs and running verify --------------------------------------------------------------


def registry_outputs(registry: Registry) -> dict[str, Any]:
    return {
        "host": registry.host,
        "url": registry.url,
        "username": registry.username,
        "password": registry.password,
        "pullSecret": "regcred",
    }


def service_outputs(
    registry: Registry, name: str, digest: str, slo: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    repository = f"{registry.host}/{OWNER}/{name}"
    return {
        "repository": f"{OWNER}/{name}",
        "namespace": "delivery-dev",
        "version": "1.0.0",
        "platforms": BOTH,
        "image": {
            "repository": repository,
            "tag": "1.0.0",
            "digest": digest,
            "ref": f"{repository}@{digest}",
        },
        "signing": {"mode": "keypair", "publicKey": registry.public_key_pem},
        "slo": slo or {"ruleGroups": [], "pageAlerts": [], "ticketAlerts": []},
    }


def probe_outputs(url: str, threshold: float = 0.3) -> dict[str, Any]:
    return {
        "url": url,
        "requests": 12,
        "concurrency": 4,
        "latencyThresholdSeconds": threshold,
        "successRatio": 0.99,
        "errorRatio": 0.008,
    }


def stack_outputs(
    registry: Registry, services: dict[str, Any], prometheus_url: str | None = None
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "environment": "dev",
        "namespace": "delivery-dev",
        "registry": registry_outputs(registry),
        "services": services,
    }
    if prometheus_url:
        document["prometheus"] = {"url": prometheus_url}
    return document


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def document(self) -> dict[str, Any]:
        return json.loads(self.out)

    def checks(self, name: str) -> dict[str, dict[str, Any]]:
        """Results of one check by service (the registry check under its URL)."""
        return {c["service"] or c["name"]: c for c in self.document["checks"] if c["name"] == name}


def run_verify(
    tmp_path: Path, outputs: dict[str, Any], registry: Registry | None, timeout: float = 30, **options: Any
) -> Run:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))
    out, err = io.StringIO(), io.StringIO()
    code = verify(
        VerifyOptions(
            outputs=path, ca_bundle=registry.ca_bundle if registry else None, timeout=timeout, **options
        ),
        out,
        err,
        as_json=True,
    )
    return Run(code=code, out=out.getvalue(), err=err.getvalue())


def dev_services(
    registry: Registry, images: Images, rendered_rules: RenderedRules, probe: dict[str, Any] | None = None
) -> dict[str, Any]:
    services = {
        name: service_outputs(registry, name, images.digests[name], rendered_rules.slo(name))
        for name in DEV_SERVICES
    }
    if probe:
        services[sorted(services)[0]]["probe"] = probe
    return services


# --- everything passes ---------------------------------------------------------------------------------


def test_everything_passes_through_the_command_line(
    tmp_path: Path,
    registry: Registry,
    images: Images,
    rendered_rules: RenderedRules,
    prometheus: Prometheus,
    service: Service,
) -> None:
    services = dev_services(registry, images, rendered_rules, probe_outputs(service.endpoint(HEALTHY_PATH)))
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(stack_outputs(registry, services, prometheus.url)))
    args = ("verify", "--outputs", str(outputs), "--ca-bundle", str(registry.ca_bundle), "--timeout", "60")

    result = roadbike(*args, "--json", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    run = Run(result.returncode, result.stdout, result.stderr)
    assert run.document["passed"] is True
    assert {c["name"] for c in run.document["checks"]} == {
        "registry",
        "images",
        "signatures",
        "rules",
        "probe",
    }

    [registry_check] = run.checks("registry").values()
    assert registry_check["evidence"]["statusWithCredentials"] == 200
    assert registry_check["evidence"]["statusWithoutCredentials"] == 401
    assert registry_check["evidence"]["authScheme"] == "basic"

    first, *others = DEV_SERVICES
    for name in DEV_SERVICES:
        image = run.checks("images")[name]["evidence"]
        assert set(image["platforms"]) == set(BOTH)
        assert image["tagDigest"] == images.digests[name]
        rules = run.checks("rules")[name]["evidence"]
        assert rules["missingGroups"] == [] and rules["rules"] > 0
        assert rules["ruleGroups"] == rendered_rules.slo(name)["ruleGroups"]
    assert run.checks("signatures")[first]["evidence"]["form"] == "legacy tag"
    for name in others:
        signature = run.checks("signatures")[name]["evidence"]
        assert signature["form"] == f"referrers tag {referrers_tag(images.digests[name])}"
        assert signature["tried"]["referrersApi"] == 404  # distribution 2.8 has no referrers API
    probe = run.checks("probe")[first]["evidence"]
    assert probe["requests"] == 12 and probe["statuses"] == {"200": 12}
    assert probe["p95Seconds"] < 0.3

    text = roadbike(*args, timeout=120)
    assert text.returncode == 0, text.stdout + text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == f"✅ registry   {registry.url}/v2/ 200 with credentials, 401 without"
    assert all(line.startswith("✅ ") for line in lines[:-1])
    assert lines[-1].startswith(f"verify: {len(run.document['checks'])} checks, all passed")
    assert "verify: registry" in text.stderr  # progress on stderr


# --- failing checks ------------------------------------------------------------------------------------


def test_an_index_without_arm64_fails_the_images_check(
    tmp_path: Path, registry: Registry, images: Images
) -> None:
    outputs = stack_outputs(
        registry, {"amd64-only": service_outputs(registry, "amd64-only", images.digests["amd64-only"])}
    )
    run = run_verify(tmp_path, outputs, registry, only=("images", "signatures"))
    assert run.code == 1
    image = run.checks("images")["amd64-only"]
    assert image["passed"] is False
    assert image["message"] == (
        f"amd64-only: index {images.digests['amd64-only']} lacks linux/arm64 (has linux/amd64)"
    )
    assert list(image["evidence"]["platforms"]) == ["linux/amd64"]
    assert run.checks("signatures")["amd64-only"]["passed"] is True


def test_an_unsigned_digest_fails_the_signatures_check(
    tmp_path: Path, registry: Registry, images: Images
) -> None:
    digest = images.digests["unsigned"]
    outputs = stack_outputs(registry, {"unsigned": service_outputs(registry, "unsigned", digest)})
    run = run_verify(tmp_path, outputs, registry, only=("images", "signatures"))
    assert run.code == 1
    assert run.checks("images")["unsigned"]["passed"] is True
    signature = run.checks("signatures")["unsigned"]
    assert signature["passed"] is False
    assert signature["evidence"]["tried"] == {"referrersApi": 404, "referrersTag": 404, "legacyTag": 404}
    assert f"no cosign signature for {digest}" in signature["message"]
    assert legacy_signature_tag(digest) == referrers_tag(digest) + ".sig"


def test_a_signature_made_with_another_key_fails_the_signatures_check(
    tmp_path: Path, registry: Registry, images: Images
) -> None:
    name = DEV_SERVICES[0]  # signed in the legacy form by the registry's key
    other = Registry(registry.host, registry.url, registry.username, registry.password, registry.ca_bundle)
    service = service_outputs(registry, name, images.digests[name])
    service["signing"]["publicKey"] = other.public_key_pem
    run = run_verify(tmp_path, stack_outputs(registry, {name: service}), registry, only=("signatures",))
    assert run.code == 1
    signature = run.checks("signatures")[name]
    assert signature["passed"] is False
    assert signature["evidence"]["tried"]["legacyKeyMismatches"] == 1
    assert "does not verify with the service's publicKey" in signature["message"], signature["message"]


def test_a_public_key_that_is_no_pem_key_is_bad_input(
    tmp_path: Path, registry: Registry, images: Images
) -> None:
    name = DEV_SERVICES[0]
    service = service_outputs(registry, name, images.digests[name])
    service["signing"]["publicKey"] = "-----BEGIN PUBLIC KEY-----\n...\n-----END PUBLIC KEY-----\n"
    run = run_verify(tmp_path, stack_outputs(registry, {name: service}), registry, only=("signatures",))
    assert run.code == 2
    assert f"services.{name}.signing.publicKey: must be the PEM public key" in run.err, run.err


def test_a_rule_file_not_loaded_fails_the_rules_check(
    tmp_path: Path,
    registry: Registry,
    images: Images,
    rendered_rules: RenderedRules,
    prometheus_with: Callable[[tuple[Path, ...]], Prometheus],
) -> None:
    *loaded, left_out = DEV_SERVICES  # the dev stack has two services with SLOs
    partial = prometheus_with(tuple(rendered_rules.files[name] for name in loaded))
    outputs = stack_outputs(registry, dev_services(registry, images, rendered_rules), partial.url)
    run = run_verify(tmp_path, outputs, registry, only=("rules",))
    assert run.code == 1
    results = run.checks("rules")
    assert results[left_out]["passed"] is False
    missing = rendered_rules.slo(left_out)["ruleGroups"]
    assert results[left_out]["evidence"]["missingGroups"] == missing
    assert (
        f"rule groups not loaded for namespace delivery-dev: {', '.join(missing)}"
        in (results[left_out]["message"])
    )
    for name in loaded:
        assert results[name]["passed"] is True


def firing_copy(rules_file: Path, directory: Path) -> Path:
    """The rule file with every page alert firing at once (`vector(1)`, no `for`): same names and labels."""
    document = yaml.safe_load(rules_file.read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            if rule.get("labels", {}).get("severity") == "page":
                rule["expr"] = "vector(1)"
                rule.pop("for", None)
    path = directory / rules_file.name
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@dataclass(frozen=True)
class TwoStacks:
    """Prometheus with dev's rules but one service's, and staging's rules (same group and alert names,
    namespace delivery-staging) of every service with its page alerts firing, in files listed after dev's."""

    prometheus: Prometheus
    left_out: str
    staging_slo: dict[str, dict[str, list[str]]]
    staging_files: dict[str, Path]


@pytest.fixture(scope="session")
def two_stacks(
    tmp_path_factory: pytest.TempPathFactory,
    plans: dict[str, tuple[Path, Any]],
    rendered_rules: RenderedRules,
    prometheus_with: Callable[[tuple[Path, ...]], Prometheus],
) -> TwoStacks:
    staging_out, result = plans["staging"]
    assert result.returncode in (0, 1), result.stderr
    staging = RenderedRules(staging_out, {n: staging_out / f"prometheus/{n}.rules.yml" for n in DEV_SERVICES})
    directory = tmp_path_factory.mktemp("zz-staging-firing")  # after dev's files in Prometheus' order
    *loaded, left_out = DEV_SERVICES
    files = tuple(rendered_rules.files[name] for name in loaded)
    files += tuple(firing_copy(staging.files[name], directory) for name in DEV_SERVICES)
    prometheus = prometheus_with(files)
    end = time.monotonic() + 20
    while not _staging_pages_firing(prometheus, len(DEV_SERVICES)):
        assert time.monotonic() < end, "staging's page alerts never fired"
        time.sleep(0.2)
    return TwoStacks(prometheus, left_out, {name: staging.slo(name) for name in DEV_SERVICES}, staging.files)


def _staging_pages_firing(prometheus: Prometheus, services: int) -> bool:
    alerts = requests.get(f"{prometheus.url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    firing = {
        a["labels"]["service"]
        for a in alerts
        if a["state"] == "firing" and a["labels"].get("namespace") == "delivery-staging"
    }
    return len(firing) == services


def test_another_stacks_groups_of_the_same_names_do_not_mask_a_missing_group(
    tmp_path: Path, registry: Registry, images: Images, rendered_rules: RenderedRules, two_stacks: TwoStacks
) -> None:
    outputs = stack_outputs(
        registry, dev_services(registry, images, rendered_rules), two_stacks.prometheus.url
    )
    run = run_verify(tmp_path, outputs, registry, only=("rules",))
    assert run.code == 1
    result = run.checks("rules")[two_stacks.left_out]
    missing = rendered_rules.slo(two_stacks.left_out)["ruleGroups"]
    assert missing == two_stacks.staging_slo[two_stacks.left_out]["ruleGroups"]  # the very same names
    assert result["passed"] is False
    assert result["evidence"]["missingGroups"] == missing
    assert result["evidence"]["missingGroupsInOtherNamespaces"] == {
        name: ["delivery-staging"] for name in missing
    }
    assert f"rule groups not loaded for namespace delivery-dev: {', '.join(missing)}" in result["message"]
    assert f"{len(missing)} of these names only for namespace delivery-staging" in result["message"]


def test_another_stacks_firing_page_alert_does_not_fail_this_stack(
    tmp_path: Path, registry: Registry, images: Images, rendered_rules: RenderedRules, two_stacks: TwoStacks
) -> None:
    outputs = stack_outputs(
        registry, dev_services(registry, images, rendered_rules), two_stacks.prometheus.url
    )
    run = run_verify(tmp_path, outputs, registry, only=("rules",))
    for name in DEV_SERVICES:
        if name == two_stacks.left_out:
            continue
        result = run.checks("rules")[name]
        assert result["passed"] is True, result["message"]
        assert result["evidence"]["firingPageAlerts"] == {}
        assert result["message"].endswith("page alerts defined, none firing in delivery-dev")

    # the same Prometheus, read for staging: its page alerts are firing, and fail staging
    staging = {name: {"slo": slo} for name, slo in two_stacks.staging_slo.items()}
    staging_outputs = {"namespace": "delivery-staging", "services": staging}
    run = run_verify(
        tmp_path, staging_outputs, None, only=("rules",), prometheus_url=two_stacks.prometheus.url
    )
    assert run.code == 1
    for name, slo in two_stacks.staging_slo.items():
        result = run.checks("rules")[name]
        assert result["evidence"]["missingGroups"] == []
        rules = [
            r
            for g in yaml.safe_load(two_stacks.staging_files[name].read_text())["groups"]
            for r in g["rules"]
        ]
        pages = [r["alert"] for r in rules if r.get("labels", {}).get("severity") == "page"]
        assert result["evidence"]["firingPageAlerts"] == {
            alert: pages.count(alert) for alert in slo["pageAlerts"]
        }
        assert "page alerts firing: " in result["message"]


def test_a_slow_failing_endpoint_breaks_the_latency_slo(
    tmp_path: Path, registry: Registry, service: Service
) -> None:
    outputs = {
        "services": {"slow": {"probe": probe_outputs(service.endpoint(f"{SLOW_FAILING_PATH}/latency-slo"))}}
    }
    run = run_verify(tmp_path, outputs, None, only=("probe",))
    assert run.code == 1
    probe = run.checks("probe")["slow"]
    assert probe["passed"] is False
    evidence = probe["evidence"]
    assert evidence["p95Seconds"] > 0.3
    assert evidence["statuses"] == {"200": 9, "503": 3}
    assert evidence["errorRatio"] == 0.25
    assert evidence["broken"] == ["latency", "success", "errors"]
    assert "breaks the latency, success, errors SLO" in probe["message"]


def test_the_probe_flags_override_the_outputs(tmp_path: Path, service: Service) -> None:
    outputs = {"services": {"web": {"probe": probe_outputs(service.endpoint(HEALTHY_PATH))}}}
    run = run_verify(tmp_path, outputs, None, only=("probe",), probe_requests=5, probe_concurrency=1)
    assert run.code == 0
    evidence = run.checks("probe")["web"]["evidence"]
    assert (evidence["requests"], evidence["concurrency"]) == (5, 1)
    assert (evidence["plannedRequests"], evidence["stoppedShort"]) == (5, None)


def test_the_probe_stops_when_the_time_budget_is_spent_and_fails(tmp_path: Path, service: Service) -> None:
    """The most requests allowed, against an endpoint that takes 0.35s, with a 1s budget: the probe sends
    what fits in the budget (4 at a time, none scheduled ahead), judges only those, and fails the run."""
    outputs = {
        "services": {"slow": {"probe": probe_outputs(service.endpoint(f"{SLOW_FAILING_PATH}/budget"))}}
    }
    started = time.monotonic()
    run = run_verify(
        tmp_path, outputs, None, timeout=1, only=("probe",), probe_requests=100_000, probe_concurrency=4
    )
    elapsed = time.monotonic() - started
    assert run.code == 1
    assert elapsed < 5, f"the probe ran {elapsed:.1f}s past a 1s budget"
    probe = run.checks("probe")["slow"]
    evidence = probe["evidence"]
    sent = evidence["requests"]
    assert 0 < sent <= 4 * 4 and evidence["plannedRequests"] == 100_000
    assert sum(evidence["statuses"].values()) == sent  # only the requests made are counted
    assert evidence["stoppedShort"] == "total timeout of 1s exhausted"
    assert evidence["p95Seconds"] > 0.3 and "latency" in evidence["broken"]  # no 0s stand-ins
    assert probe["passed"] is False
    assert probe["message"].startswith(
        f"slow: sent {sent} of 100000 requests, 4 at a time: total timeout of 1s exhausted; over those sent: "
    )


def test_probe_flags_beyond_the_bounds_are_usage_errors(tmp_path: Path) -> None:
    result = roadbike(
        "verify",
        "--outputs",
        "outputs.json",
        "--probe-requests",
        "3000000",
        "--probe-concurrency",
        "1001",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: --probe-requests: must be at most 100000 (got 3000000)",
        "error: --probe-concurrency: must be at most 1000 (got 1001)",
    ]


def test_the_registry_down_is_a_failed_check_with_evidence_not_a_traceback(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    host = f"127.0.0.1:{port}"
    digest = "sha256:" + "a" * 64
    repository = f"{host}/{OWNER}/go-http-server"
    outputs = {
        "namespace": "delivery-dev",
        "registry": {"host": host, "url": f"https://{host}", "username": "ci", "password": "not-used"},
        "prometheus": {"url": f"http://127.0.0.1:{port}"},
        "services": {
            "go-http-server": {
                "image": {
                    "repository": repository,
                    "tag": "1.0.0",
                    "digest": digest,
                    "ref": f"{repository}@{digest}",
                },
                "slo": {"ruleGroups": ["slo"], "pageAlerts": [], "ticketAlerts": []},
            }
        },
    }
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))

    result = roadbike("verify", "--outputs", str(path), "--timeout", "20", timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"❌ registry   GET https://{host}/v2/: connection failed")
    assert "Connection refused" in lines[0]
    assert len(lines) == 5 and all(line.startswith("❌ ") for line in lines[:-1])
    assert "retry 2/4" in result.stderr  # retried with backoff before giving up

    as_json = roadbike(
        "verify",
        "--outputs",
        str(path),
        "--only",
        "registry",
        "images",
        "--timeout",
        "20",
        "--json",
        timeout=60,
    )
    assert as_json.returncode == 1
    document = json.loads(as_json.stdout)
    assert document["passed"] is False
    registry_check = document["checks"][0]
    assert registry_check["evidence"]["attempts"] == 4
    assert registry_check["evidence"]["request"] == f"GET https://{host}/v2/"
    later = document["checks"][1]["evidence"]
    # the registry is known to be down: no second round of retries
    assert later["attempts"] == 0 and "was unreachable earlier" in later["error"]


def test_a_registry_certificate_not_trusted_fails_clearly(
    tmp_path: Path, registry: Registry, images: Images
) -> None:
    outputs = stack_outputs(registry, {})
    outputs["services"] = {"x": {}}
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))
    out, err = io.StringIO(), io.StringIO()
    code = verify(VerifyOptions(outputs=path, only=("registry",), timeout=10), out, err, as_json=True)
    assert code == 1
    [check] = json.loads(out.getvalue())["checks"]
    assert "TLS verification failed (self-signed certificate)" in check["message"]
    assert "--ca-bundle" in check["message"]
    assert check["evidence"]["attempts"] == 1  # a certificate problem is not retried


def test_a_token_auth_registry_with_the_referrers_api(tmp_path: Path) -> None:
    with token_registry() as registry:
        name = f"{OWNER}/api"
        index = registry.put_image(name, "2.0.0", BOTH)
        signature = registry.put_bundle_signature(name, index)
        repository = f"{registry.host}/{name}"
        image = {
            "repository": repository,
            "tag": "2.0.0",
            "digest": index["digest"],
            "ref": f"{repository}@{index['digest']}",
        }
        outputs = {
            "registry": {
                "host": registry.host,
                "url": registry.url,
                "username": registry.username,
                "password": registry.password,
            },
            "services": {"api": {"platforms": BOTH, "image": image}},
        }
        run = run_verify(tmp_path, outputs, None, only=("registry", "images", "signatures"))
        assert run.code == 0, run.out
        assert run.checks("registry")["registry"]["evidence"]["authScheme"] == "bearer"
        evidence = run.checks("signatures")["api"]["evidence"]
        assert (evidence["form"], evidence["signature"], evidence["tried"]) == (
            "referrers API",
            signature,
            {"referrersApi": 200},
        )
        assert f"repository:{name}:pull" in registry.token_requests  # one token per repository scope

        unsigned = registry.put_image(f"{OWNER}/other", "1.0.0", BOTH)
        other = f"{registry.host}/{OWNER}/other"
        outputs["services"] = {
            "other": {
                "image": {
                    "repository": other,
                    "tag": "1.0.0",
                    "digest": unsigned["digest"],
                    "ref": f"{other}@{unsigned['digest']}",
                }
            }
        }
        run = run_verify(tmp_path, outputs, None, only=("signatures",))
        assert run.code == 1
        # the referrers API answered (empty), so there is no referrers tag to look for; the legacy tag is still tried
        assert run.checks("signatures")["other"]["evidence"]["tried"] == {
            "referrersApi": 200,
            "legacyTag": 404,
        }


def test_refused_credentials_fail_the_registry_check(tmp_path: Path, registry: Registry) -> None:
    outputs = stack_outputs(registry, {"web": {}})
    outputs["registry"]["password"] = "not-the-password"
    run = run_verify(tmp_path, outputs, registry, only=("registry",))
    assert run.code == 1
    check = run.checks("registry")["registry"]
    assert check["message"].endswith(
        f"401 with credentials, 401 without: the credentials of {registry.username!r} are refused"
    )
    assert "not-the-password" not in run.out + run.err


# --- outputs without a digest: the tag is resolved in the registry ------------------------------------


def plan_outputs(rendered_rules: RenderedRules) -> dict[str, Any]:
    """The stack outputs of the dev stack's plan (a committed stack: the platform builds no image)."""
    return dict(json.loads((rendered_rules.plan_dir / "plan.json").read_text())["outputs"])


def without_digest(registry: Registry, name: str, tag: str) -> dict[str, Any]:
    return {"platforms": BOTH, "image": {"repository": f"{registry.host}/{OWNER}/{name}", "tag": tag}}


def test_outputs_without_a_digest_check_the_digest_the_tag_resolves_to(
    tmp_path: Path, registry: Registry, images: Images, rendered_rules: RenderedRules
) -> None:
    """The plan's own image outputs (repository and tag only), moved to the test registry, where the
    release workflows have pushed and signed each version."""
    planned = plan_outputs(rendered_rules)["services"]
    host = plan_outputs(rendered_rules)["registry"]["host"]
    services = {}
    for name in DEV_SERVICES:
        image = planned[name]["image"]
        assert set(image) == {"repository", "tag"}  # what `pulumi up` exports without bootstrapCommit
        assert image["repository"] == f"{host}/{OWNER}/{name}"
        pushed = registry.push_index(f"{OWNER}/{name}", image["tag"], BOTH)
        assert pushed == images.digests[name]  # the same index as 1.0.0, signed by the `images` fixture
        services[name] = {**planned[name], "image": without_digest(registry, name, image["tag"])["image"]}

    run = run_verify(tmp_path, stack_outputs(registry, services), registry, only=("images", "signatures"))
    assert run.code == 0, run.out + run.err
    first, *others = DEV_SERVICES
    for name in DEV_SERVICES:
        tag, digest = planned[name]["image"]["tag"], images.digests[name]
        resolved = f"tag {tag} -> {digest}"
        image = run.checks("images")[name]
        assert image["message"] == f"{name}: {resolved}: index has linux/amd64, linux/arm64"
        assert image["target"] == f"{registry.host}/{OWNER}/{name}:{tag}"
        evidence = image["evidence"]
        assert (evidence["digestSource"], evidence["resolved"], evidence["digest"]) == (
            "tag",
            resolved,
            digest,
        )
        assert (evidence["tagStatus"], set(evidence["platforms"])) == (200, set(BOTH))
        assert evidence["platformManifestStatus"] == {"linux/amd64": 200, "linux/arm64": 200}
        signature = run.checks("signatures")[name]
        assert signature["passed"] is True
        assert (signature["evidence"]["digest"], signature["evidence"]["resolved"]) == (digest, resolved)
        assert (
            f" {resolved} (not checked against a key: the outputs' publicKey is unknown"
            in signature["message"]
        )
    assert run.checks("signatures")[first]["evidence"]["form"] == "legacy tag"
    for name in others:
        form = f"referrers tag {referrers_tag(images.digests[name])}"
        assert run.checks("signatures")[name]["evidence"]["form"] == form


def test_outputs_without_a_digest_and_a_tag_never_pushed_fail_with_404(
    tmp_path: Path, registry: Registry, images: Images
) -> None:
    outputs = stack_outputs(registry, {"go-http-server": without_digest(registry, "go-http-server", "9.9.9")})
    run = run_verify(tmp_path, outputs, registry, only=("images", "signatures"))
    assert run.code == 1, run.out + run.err
    repository = f"{registry.host}/{OWNER}/go-http-server"
    image = run.checks("images")["go-http-server"]
    assert image["passed"] is False
    assert image["message"] == (
        f"go-http-server: tag 9.9.9 not found (404) in {repository}; the outputs have no image.digest"
    )
    assert image["evidence"] == {
        "repository": repository,
        "tag": "9.9.9",
        "digest": None,
        "digestSource": "tag",
        "resolved": "tag 9.9.9 not found (404)",
        "tagStatus": 404,
        "tagDigest": None,
    }
    signature = run.checks("signatures")["go-http-server"]
    assert signature["passed"] is False
    assert signature["message"] == (
        f"go-http-server: tag 9.9.9 not found (404) in {repository}: no digest to look for signatures of"
    )
    assert signature["evidence"]["tried"] == {}
    assert "error:" not in run.err


def test_a_resolved_tag_without_arm64_fails_the_images_check(
    tmp_path: Path, registry: Registry, images: Images
) -> None:
    outputs = stack_outputs(registry, {"amd64-only": without_digest(registry, "amd64-only", "1.0.0")})
    run = run_verify(tmp_path, outputs, registry, only=("images", "signatures"))
    assert run.code == 1
    digest = images.digests["amd64-only"]
    image = run.checks("images")["amd64-only"]
    assert image["message"] == (
        f"amd64-only: tag 1.0.0 -> {digest}: index {digest} lacks linux/arm64 (has linux/amd64)"
    )
    assert run.checks("signatures")["amd64-only"]["passed"] is True


def test_a_tag_whose_content_is_not_the_digest_the_registry_names_fails(tmp_path: Path) -> None:
    with token_registry() as registry:
        name = f"{OWNER}/api"
        index = registry.put_image(name, "2.0.0", BOTH)
        outputs = {
            "registry": {
                "host": registry.host,
                "url": registry.url,
                "username": registry.username,
                "password": registry.password,
            },
            "services": {"api": {"image": {"repository": f"{registry.host}/{name}", "tag": "2.0.0"}}},
        }
        run = run_verify(tmp_path, outputs, None, only=("images",))
        assert run.code == 0, run.out
        assert run.checks("images")["api"]["evidence"]["resolved"] == f"tag 2.0.0 -> {index['digest']}"

        claimed = "sha256:" + "f" * 64
        registry.named_digests[(name, "2.0.0")] = claimed
        run = run_verify(tmp_path, outputs, None, only=("images", "signatures"))
        assert run.code == 1
        for check in ("images", "signatures"):
            result = run.checks(check)["api"]
            assert result["passed"] is False
            assert result["message"] == (
                f"api: manifest {name}:2.0.0 has content digest {index['digest']}, not {claimed}"
            )


def test_the_plan_json_of_a_committed_stack_is_verified_without_bad_input(
    rendered_rules: RenderedRules, prometheus: Prometheus
) -> None:
    """`roadbike plan` of the dev stack has no image digests: verify resolves the tags (anonymously, as a
    plan masks the password) and fails the checks with evidence, since nothing is deployed."""
    plan = rendered_rules.plan_dir / "plan.json"
    outputs = plan_outputs(rendered_rules)
    assert all("digest" not in outputs["services"][name]["image"] for name in DEV_SERVICES)
    args = ("verify", "--outputs", str(plan), "--prometheus-url", prometheus.url, "--timeout", "20", "--json")
    result = roadbike(*args, "--only", "images", "signatures", "rules", timeout=90)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "error:" not in result.stderr and "Traceback" not in result.stderr
    assert "registry.password is masked in the plan: images and signatures pull anonymously" in result.stderr
    run = Run(result.returncode, result.stdout, result.stderr)
    registry_url = outputs["registry"]["url"]
    for name in DEV_SERVICES:
        tag = outputs["services"][name]["image"]["tag"]
        assert run.checks("rules")[name]["passed"] is True
        for check in ("images", "signatures"):
            failed = run.checks(check)[name]
            assert failed["passed"] is False
            # the outputs' tag is looked up in the stack's registry, which is not reachable from here
            assert failed["evidence"]["request"] == f"GET {registry_url}/v2/{OWNER}/{name}/manifests/{tag}"

    everything = roadbike("verify", "--outputs", str(plan), timeout=60)
    assert everything.returncode == 2  # the registry check needs the password; no digest is asked for
    assert everything.stderr.splitlines() == [
        f"error: {plan}: outputs.registry.password: is a masked secret, as every secret in a plan; a check "
        "that needs it reads the outputs of `pulumi stack output --json --show-secrets` after `pulumi up`",
        f"error: {plan}: outputs.prometheus.url: missing; pass --prometheus-url for the rules check",
    ]


# --- bad input: exit 2, naming the key -----------------------------------------------------------------


def test_a_missing_key_is_bad_input_naming_the_key_path(
    tmp_path: Path, registry: Registry, images: Images
) -> None:
    outputs = stack_outputs(
        registry, {"go-http-server": service_outputs(registry, "go-http-server", images.digests["unsigned"])}
    )
    del outputs["services"]["go-http-server"]["image"]["digest"]
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    result = roadbike("verify", "--outputs", "outputs.json", "--only", "images", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: outputs.json: services.go-http-server.image.digest: missing"
    ]
    assert result.stdout == ""


def test_masked_secrets_are_bad_input_asking_for_show_secrets(tmp_path: Path, registry: Registry) -> None:
    outputs = stack_outputs(registry, {"web": {}})
    outputs["registry"]["password"] = "[secret]"
    run = run_verify(tmp_path, outputs, registry, only=("registry",))
    assert run.code == 2
    assert f"{tmp_path / 'outputs.json'}: registry.password: is a masked secret" in run.err
    assert "--show-secrets" in run.err


@pytest.mark.parametrize(
    ("content", "only", "expected"),
    [
        ("{not json", ("registry",), "outputs.json: not JSON (line 1, column 2)"),
        ("[]", ("registry",), "outputs.json: must be a JSON object of stack outputs"),
        (
            '{"services": {"web": {"slo": {}}}}',
            ("rules",),
            "outputs.json: prometheus.url: missing; pass --prometheus-url",
        ),
        (
            '{"services": {"web": {"slo": {}}}}',
            ("rules",),
            "outputs.json: services.web.slo.ruleGroups: missing",
        ),
        (
            '{"prometheus": {"url": "http://127.0.0.1:9"}, "services": {"web": {"slo": {}}}}',
            ("rules",),
            "outputs.json: namespace: missing",
        ),
        ('{"services": {"web": {}}}', ("probe",), "outputs.json: services.*.probe: missing"),
        (
            '{"services": {"web": {"probe": {"url": "ftp://x", "requests": 0}}}}',
            ("probe",),
            "outputs.json: services.web.probe.url: 'ftp://x' is not an http(s) URL",
        ),
        ('{"services": {}}', ("probe",), "outputs.json: services: must be a non-empty mapping"),
        (
            '{"registry": "[secret]", "services": {"w": {}}}',
            ("registry",),
            "outputs.json: registry: is a masked secret",
        ),
    ],
)
def test_bad_outputs_are_refused_with_exit_2(
    tmp_path: Path, content: str, only: tuple[str, ...], expected: str
) -> None:
    path = tmp_path / "outputs.json"
    path.write_text(content)
    err = io.StringIO()
    code = verify(VerifyOptions(outputs=path, only=only), io.StringIO(), err)
    assert code == 2
    assert expected in err.getvalue()


DIGEST_A = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (
            {"digest": "sha256:abc", "ref": "r.example/acme/web@sha256:abc"},
            "services.web.image.digest: 'sha256:abc' is not a sha256 digest",
        ),
        (
            {"digest": DIGEST_A, "ref": f"r.example/acme/other@{DIGEST_A}"},
            f"services.web.image.ref: 'r.example/acme/other@{DIGEST_A}' is not image.repository@image.digest",
        ),
        ({"ref": f"r.example/acme/web@{DIGEST_A}"}, "services.web.image.digest: missing"),
        ({"digest": DIGEST_A}, "services.web.image.ref: missing"),
        ({"tag": "1.0.0+build.7"}, "services.web.image.tag: '1.0.0+build.7' is not an image tag"),
        ({"tag": None}, "services.web.image.tag: missing"),
    ],
)
def test_a_digest_in_the_outputs_must_be_valid_and_consistent(
    tmp_path: Path, image: dict[str, Any], expected: str
) -> None:
    """digest and ref are optional, but come together, and only as `<repository>@<sha256 digest>`."""
    registry = {"host": "r.example", "url": "https://r.example", "username": "u", "password": "p"}
    coordinates = {"repository": "r.example/acme/web", "tag": "1.0.0", **image}
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({"registry": registry, "services": {"web": {"image": coordinates}}}))
    err = io.StringIO()
    assert verify(VerifyOptions(outputs=path, only=("images",)), io.StringIO(), err) == 2
    [line] = err.getvalue().splitlines()
    assert line.startswith(f"error: {path}: {expected}")


def test_bad_flags_are_usage_errors(tmp_path: Path) -> None:
    result = roadbike(
        "verify",
        "--outputs",
        "missing.json",
        "--timeout",
        "0",
        "--probe-requests",
        "0",
        "--ca-bundle",
        "nope.pem",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: --timeout: must be more than 0 seconds (got 0)",
        "error: --probe-requests: must be at least 1 (got 0)",
        "error: --ca-bundle nope.pem: not a file",
    ]
    unreadable = roadbike("verify", "--outputs", "missing.json", cwd=tmp_path)
    assert unreadable.returncode == 2 and unreadable.stderr == "error: missing.json: not found\n"


def test_the_plan_json_of_a_dry_run_serves_the_rules_check(
    rendered_rules: RenderedRules, prometheus: Prometheus
) -> None:
    """The plan's own `slo` outputs against Prometheus loaded with the plan's own rule files."""
    plan = rendered_rules.plan_dir / "plan.json"
    out, err = io.StringIO(), io.StringIO()
    options = VerifyOptions(outputs=plan, only=("rules",), prometheus_url=prometheus.url, timeout=30)
    assert verify(options, out, err, as_json=True) == 0, out.getvalue() + err.getvalue()
    checks = json.loads(out.getvalue())["checks"]
    assert sorted(c["service"] for c in checks) == DEV_SERVICES
    for check in checks:
        assert check["evidence"]["ruleGroups"] == rendered_rules.slo(check["service"])["ruleGroups"]

    err = io.StringIO()
    assert verify(VerifyOptions(outputs=plan, only=("registry",)), io.StringIO(), err) == 2
    assert f"{plan}: outputs.registry.password: is a masked secret" in err.getvalue()


# --- transport: retries and the total deadline ---------------------------------------------------------


def test_transient_errors_are_retried_with_backoff(service: Service) -> None:
    messages: list[str] = []
    transport = Transport(deadline=Deadline(20), progress=messages.append, backoff=0.05)
    response = transport.request("GET", service.endpoint(f"{FLAKY_PATH}/retried"))
    assert response.status_code == 200
    assert [m.split(": ", 1)[1] for m in messages] == ["503; retry 2/4 in 0.05s", "503; retry 3/4 in 0.10s"]


def test_retries_stop_at_the_attempt_limit_and_return_the_last_status(service: Service) -> None:
    transport = Transport(deadline=Deadline(20), max_attempts=2, backoff=0.01)
    assert transport.request("GET", service.endpoint(f"{FLAKY_PATH}/limited")).status_code == 503


def test_the_total_deadline_bounds_every_request(service: Service) -> None:
    transport = Transport(deadline=Deadline(0.2), backoff=0.05)
    with pytest.raises(HttpFailure) as failure:
        transport.request("GET", service.endpoint(f"{SLOW_FAILING_PATH}/deadline"))
    assert failure.value.reason in ("read timeout", "total timeout of 0.2s reached")
    with pytest.raises(HttpFailure, match=r"total timeout of 0\.2s reached"):
        transport.request("GET", service.endpoint(HEALTHY_PATH))


# --- pure evaluations ----------------------------------------------------------------------------------


def _rules_api(
    state: str = "inactive", health: str = "ok", firing: int = 0, namespace: str = "ns-a"
) -> list[dict[str, Any]]:
    labels = {"namespace": namespace}
    alerts = [{"labels": {"alertname": "Burn", **labels}, "state": "firing"}] * firing
    return [
        {
            "name": "sli",
            "file": f"{namespace}.rules.yml",
            "rules": [{"name": "slo:ratio", "type": "recording", "health": health, "labels": labels}],
        },
        {
            "name": "alerts",
            "file": f"{namespace}.rules.yml",
            "rules": [
                {
                    "name": "Burn",
                    "type": "alerting",
                    "health": "ok",
                    "state": state,
                    "alerts": alerts,
                    "labels": labels,
                },
                {
                    "name": "Slow",
                    "type": "alerting",
                    "health": "ok",
                    "state": "inactive",
                    "alerts": [],
                    "labels": labels,
                },
            ],
        },
    ]


SLO = SloTarget(rule_groups=("sli", "alerts"), page_alerts=("Burn",), ticket_alerts=("Slow",))


def test_evaluate_rules_passes_healthy_loaded_groups() -> None:
    passed, problems, evidence = evaluate_rules(_rules_api(), SLO, "ns-a")
    assert (passed, problems, evidence["rules"], evidence["files"]) == (True, [], 3, ["ns-a.rules.yml"])


def test_evaluate_rules_fails_a_firing_page_alert() -> None:
    passed, problems, evidence = evaluate_rules(_rules_api(state="firing", firing=2), SLO, "ns-a")
    assert not passed and problems == ["page alerts firing: Burn (2)"]
    assert evidence["firingPageAlerts"] == {"Burn": 2}


def test_evaluate_rules_counts_only_the_stacks_namespace() -> None:
    other = _rules_api(state="firing", firing=2, namespace="ns-b")
    passed, problems, evidence = evaluate_rules(_rules_api() + other, SLO, "ns-a")
    assert (passed, problems, evidence["firingPageAlerts"]) == (True, [], {})
    passed, problems, evidence = evaluate_rules(other, SLO, "ns-a")
    assert not passed and evidence["missingGroups"] == ["sli", "alerts"]
    assert evidence["missingGroupsInOtherNamespaces"] == {"sli": ["ns-b"], "alerts": ["ns-b"]}


def test_evaluate_rules_fails_unhealthy_rules_and_undefined_alerts() -> None:
    slo = SloTarget(rule_groups=("sli", "alerts"), page_alerts=("Burn", "Missing"), ticket_alerts=())
    passed, problems, _ = evaluate_rules(_rules_api(health="err"), slo, "ns-a")
    assert not passed
    assert problems == ["rule slo:ratio in sli is err", "alerts not defined in the loaded groups: Missing"]


def test_percentile_is_nearest_rank() -> None:
    assert percentile([0.1 * i for i in range(1, 21)], 0.95) == pytest.approx(1.9)
    assert percentile([0.5], 0.95) == 0.5


def test_evaluate_probe_counts_transport_errors_as_errors() -> None:
    probe = ProbeTarget("http://x/", 4, 2, latency_threshold_seconds=1, success_ratio=0.75, error_ratio=0.25)
    samples = [ProbeSample(0.1, 200)] * 3 + [ProbeSample(2.0, None, "read timeout")]
    passed, message, evidence = evaluate_probe(ProbeRun(tuple(samples), planned=4), probe)
    assert passed is False and evidence["broken"] == ["latency"]
    assert evidence["statuses"] == {"200": 3, "error": 1}
    assert message.startswith("4 requests, 2 at a time: p95 2.000s > 1s, success 75.0% >= 75.0%")


def test_bearer_and_basic_challenges_are_parsed() -> None:
    bearer = parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry",scope="repository:a:pull"'
    )
    assert bearer is not None and bearer.scheme == "bearer"
    assert bearer.params == {
        "realm": "https://auth.example/token",
        "service": "registry",
        "scope": "repository:a:pull",
    }
    basic = parse_challenge('Basic realm="roadbike"')
    assert basic is not None and (basic.scheme, basic.params) == ("basic", {"realm": "roadbike"})
