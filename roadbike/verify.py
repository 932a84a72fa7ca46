"""`roadbike verify`: check the live delivery chain described by a stack's outputs.

Checks (each one result per target, with evidence):
  registry    `/v2/` answers 200 with the stack's credentials and 401 without them
  images      each image digest is a multi-arch index listing linux/amd64 and linux/arm64 manifests that
              exist, and the version tag points at that digest; outputs without a digest (the service's
              release workflow pushes the image) check the digest the tag resolves to in the registry
  signatures  a cosign signature refers to each image digest (the same resolved digest without one in
              the outputs): OCI 1.1 referrers (API, else the referrers tag schema `sha256-<hex>`) or the
              legacy `sha256-<hex>.sig` tag, whose signature must verify with the service's publicKey
              (keypair signing; unknown in a plan's outputs: presence only)
  rules       Prometheus has every SLO rule group of the service loaded for the stack's namespace (other
              stacks' groups share the names), all rules healthy, every page and ticket alert defined,
              and no page alert firing in that namespace
  probe       N requests to the service's endpoint, C at a time, within the time budget: p95 latency,
              success and error ratios of the requests made against the SLO thresholds; a run the
              budget cut short fails (only for services with a `probe` output)

Exit 0 when all pass, 1 when one fails, 2 on bad input. A network failure is a failed check, never a
traceback.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from roadbike.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from roadbike.oci import (
    DIGEST,
    IMAGE_MANIFEST_TYPES,
    INDEX_TYPES,
    Manifest,
    RegistryClient,
    RegistryError,
    TagResolution,
)
from roadbike.probe import evaluate_probe, run_probe
from roadbike.stack_outputs import (
    CHECKS,
    DEFAULT_TIMEOUT_SECONDS,
    HTTP_URL,
    MAX_PROBE_CONCURRENCY,
    MAX_PROBE_REQUESTS,
    ImageTarget,
    InputError,
    ServiceTarget,
    SloTarget,
    VerifyInput,
    VerifyOptions,
    load_input,
)
from roadbike.transport import Deadline, HttpFailure, Progress, Transport

REQUIRED_PLATFORMS = ("linux/amd64", "linux/arm64")
RULES_MAX_BODY = 32 << 20

SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
COSIGN_ARTIFACT_SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"
SIGNATURE_ARTIFACT_TYPES = (SIGSTORE_BUNDLE, COSIGN_ARTIFACT_SIG)
COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
COSIGN_CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"


class CheckError(Exception):
    """A service answered, but not as a healthy one does (bad JSON, unexpected status)."""


# --- results ---------------------------------------------------------------------------------------


@dataclass
class CheckResult:
    name: str
    target: str
    passed: bool
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    service: str | None = None

    def document(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "service": self.service,
            "target": self.target,
            "passed": self.passed,
            "message": self.message,
            "evidence": self.evidence,
        }


@dataclass
class Context:
    inputs: VerifyInput
    options: VerifyOptions
    transport: Transport
    _rules: list[dict[str, Any]] | None = None
    _rules_failure: HttpFailure | CheckError | None = None
    _client: RegistryClient | None = None
    _resolutions: dict[str, TagResolution] = field(default_factory=dict)

    @property
    def verify(self) -> bool | str:
        return str(self.options.ca_bundle) if self.options.ca_bundle else True

    def registry_client(self) -> RegistryClient:
        """One client per run, so a Bearer token per repository scope is fetched once."""
        registry = self.inputs.registry
        assert registry is not None
        if self._client is None:
            self._client = RegistryClient(
                transport=self.transport,
                base_url=registry.url,
                username=registry.username if registry.password is not None else None,
                password=registry.password,
            )
        return self._client

    @property
    def anonymous(self) -> bool:
        """A plan's masked password: images and signatures are pulled without credentials."""
        return self.inputs.registry is not None and self.inputs.registry.password is None

    def resolve_tag(self, image: ImageTarget) -> TagResolution:
        """What the image's tag points at, asked once per run (the images and signatures checks share it)."""
        if image.tagged not in self._resolutions:
            self._resolutions[image.tagged] = self.registry_client().resolve_tag(image.name, image.tag)
        return self._resolutions[image.tagged]


def _guarded(name: str, target: str, label: str, run: Callable[[], CheckResult]) -> CheckResult:
    """Runs a check; an unreachable or misbehaving server becomes a failed result with its evidence."""
    try:
        return run()
    except HttpFailure as failure:
        return CheckResult(name, target, False, f"{label}{failure}", failure.evidence())
    except (RegistryError, CheckError) as error:
        return CheckResult(name, target, False, f"{label}{error}", {"error": str(error)})


# --- registry --------------------------------------------------------------------------------------


def check_registry(ctx: Context) -> CheckResult:
    registry = ctx.inputs.registry
    assert registry is not None
    url = f"{registry.url}/v2/"

    def run() -> CheckResult:
        anonymous = ctx.transport.request("GET", url)
        client = ctx.registry_client()
        authenticated = client.ping()
        evidence = {
            "url": url,
            "statusWithCredentials": authenticated.status_code,
            "statusWithoutCredentials": anonymous.status_code,
            "challenge": anonymous.headers.get("WWW-Authenticate", "").split(" ", 1)[0] or None,
            "authScheme": client.auth_scheme,
            "username": registry.username,
            "apiVersion": authenticated.headers.get("Docker-Distribution-Api-Version"),
        }
        passed = anonymous.status_code == 401 and authenticated.status_code == 200
        message = f"{url} {authenticated.status_code} with credentials, {anonymous.status_code} without"
        if anonymous.status_code == 200:
            message += ": anonymous access is open"
        elif authenticated.status_code == 401:
            message += f": the credentials of {registry.username!r} are refused"
        return CheckResult("registry", url, passed, message, evidence)

    return _guarded("registry", url, "", run)


# --- images ----------------------------------------------------------------------------------------


def platform_of(descriptor: dict[str, Any]) -> str:
    platform = descriptor.get("platform")
    if not isinstance(platform, dict):
        return "unknown"
    parts = [str(platform.get("os", "unknown")), str(platform.get("architecture", "unknown"))]
    if platform.get("variant"):
        parts.append(str(platform["variant"]))
    return "/".join(parts)


def required_platforms(service: ServiceTarget) -> tuple[str, ...]:
    extra = tuple(p for p in service.platforms if p not in REQUIRED_PLATFORMS)
    return (*REQUIRED_PLATFORMS, *extra)


def check_images(ctx: Context, service: ServiceTarget) -> CheckResult:
    image = service.image
    assert image is not None
    label = f"{service.name}: "
    return _guarded("images", image.target, label, lambda: _check_image(ctx, service, image, label))


def _image_evidence(ctx: Context, image: ImageTarget) -> dict[str, Any]:
    evidence: dict[str, Any] = {
        "repository": image.repository,
        "digest": image.digest,
        "digestSource": "outputs" if image.digest else "tag",
        "tag": image.tag,
    }
    if ctx.anonymous:
        evidence["anonymous"] = True
    return evidence


def _check_image(ctx: Context, service: ServiceTarget, image: ImageTarget, label: str) -> CheckResult:
    client = ctx.registry_client()
    evidence = _image_evidence(ctx, image)
    resolution: TagResolution | None = None
    if image.digest is None:  # the index the tag points at, its digest verified against its content
        resolution = ctx.resolve_tag(image)
        evidence.update(
            digest=resolution.digest,
            resolved=resolution.describe(),
            tagStatus=resolution.status,
            tagDigest=resolution.digest,
        )
        index = resolution.manifest
        missing = f"{resolution.describe()} in {image.repository}; the outputs have no image.digest"
    else:
        index, missing = client.manifest(image.name, image.digest), f"digest {image.digest} not found"
    if index is None:
        return CheckResult("images", image.target, False, label + missing, evidence)
    digest = index.digest
    lead = f"{label}{resolution.describe()}: " if resolution else label
    evidence["mediaType"] = index.media_type
    if not index.is_index:
        message = f"{lead}{digest} is a single {index.media_type} manifest, not a multi-arch index"
        return CheckResult("images", image.target, False, message, evidence)
    problems = _index_problems(client, service, image, index, evidence)
    if resolution is None:
        problems += _tag_problems(client, image, digest, evidence)
    if problems:
        return CheckResult("images", image.target, False, lead + "; ".join(problems), evidence)
    platforms = ", ".join(p for p in required_platforms(service))
    if resolution is not None:
        message = f"{lead}index has {platforms}"
    else:
        message = f"{label}index {digest} has {platforms}; tag {image.tag} points to it"
    return CheckResult("images", image.target, True, message, evidence)


def _index_problems(
    client: RegistryClient,
    service: ServiceTarget,
    image: ImageTarget,
    index: Manifest,
    evidence: dict[str, Any],
) -> list[str]:
    """The required platforms are listed in the index, and each of their manifests is in the registry."""
    listed = {platform_of(d): str(d.get("digest")) for d in index.descriptors}
    evidence["platforms"] = listed
    problems = []
    missing = [p for p in required_platforms(service) if p not in listed]
    if missing:
        has = ", ".join(sorted(p for p in listed if p != "unknown/unknown")) or "none"
        problems.append(f"index {index.digest} lacks {', '.join(missing)} (has {has})")
    statuses = {
        platform: client.manifest_status(image.name, digest)[0]
        for platform, digest in sorted(listed.items())
        if platform in required_platforms(service)
    }
    evidence["platformManifestStatus"] = statuses
    problems += [
        f"{p} manifest {listed[p]} is not in the registry ({s})" for p, s in statuses.items() if s != 200
    ]
    return problems


def _tag_problems(
    client: RegistryClient, image: ImageTarget, digest: str, evidence: dict[str, Any]
) -> list[str]:
    """With a digest in the outputs, the version tag must point at it."""
    tag_status, tag_digest = client.manifest_status(image.name, image.tag)
    evidence["tagStatus"], evidence["tagDigest"] = tag_status, tag_digest
    if tag_status != 200:
        return [f"tag {image.tag} not found ({tag_status})"]
    if tag_digest != digest:
        return [f"tag {image.tag} points to {tag_digest}, the outputs say {digest}"]
    return []


# --- signatures ------------------------------------------------------------------------------------


def referrers_tag(digest: str) -> str:
    """The OCI 1.1 referrers tag schema: `sha256:<hex>` -> `sha256-<hex>`."""
    return digest.replace(":", "-", 1)


def legacy_signature_tag(digest: str) -> str:
    """Cosign's tag-based discovery: `sha256:<hex>` -> `sha256-<hex>.sig`."""
    return f"{referrers_tag(digest)}.sig"


def signature_referrers(descriptors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in descriptors if d.get("artifactType") in SIGNATURE_ARTIFACT_TYPES]


def check_signatures(ctx: Context, service: ServiceTarget) -> CheckResult:
    image = service.image
    assert image is not None
    label = f"{service.name}: "
    return _guarded("signatures", image.target, label, lambda: _check_signature(ctx, service, image, label))


def _check_signature(ctx: Context, service: ServiceTarget, image: ImageTarget, label: str) -> CheckResult:
    tried: dict[str, Any] = {}
    evidence = {**_image_evidence(ctx, image), "signingMode": service.signing_mode, "tried": tried}
    digest, subject = _signed_subject(ctx, image, evidence)
    if digest is None:
        message = f"{label}{subject} in {image.repository}: no digest to look for signatures of"
        return CheckResult("signatures", image.target, False, message, evidence)
    found = _find_signature(ctx.registry_client(), image.name, digest, tried, service.public_key)
    if found is None:
        attempts = ", ".join(f"{k} {v}" for k, v in tried.items())
        if tried.get("legacyKeyMismatches"):
            message = (
                f"{label}the cosign signature of {subject} does not verify with the service's publicKey "
                f"(signed with another key; {attempts})"
            )
        else:
            message = f"{label}no cosign signature for {subject} ({attempts})"
        return CheckResult("signatures", image.target, False, message, evidence)
    evidence.update(found)
    verb = "signs" if found["form"] == "legacy tag" else "refers to"
    where = f"legacy tag {legacy_signature_tag(digest)}" if found["form"] == "legacy tag" else found["form"]
    message = f"{label}cosign signature {found['signature']} ({where}) {verb} {subject}"
    if found.get("keyVerified"):
        message += ", verified with the service's publicKey"
    elif service.signing_mode == "keypair" and service.public_key is None:
        message += " (not checked against a key: the outputs' publicKey is unknown, as in a plan)"
    elif service.signing_mode == "keypair":
        message += " (a referrer: its signature is checked by `cosign verify --key`, not here)"
    return CheckResult("signatures", image.target, True, message, evidence)


def _signed_subject(ctx: Context, image: ImageTarget, evidence: dict[str, Any]) -> tuple[str | None, str]:
    """The digest whose signature is looked for, and how to name it: the outputs' digest, or the one the
    tag resolves to (`tag 1.4.2 -> sha256:...`; None when the tag is not in the registry)."""
    if image.digest is not None:
        return image.digest, image.digest
    resolution = ctx.resolve_tag(image)
    evidence.update(digest=resolution.digest, resolved=resolution.describe())
    return resolution.digest, resolution.describe()


def _find_signature(
    client: RegistryClient, name: str, digest: str, tried: dict[str, Any], public_key: str | None = None
) -> dict[str, Any] | None:
    """A referrer signature (referrers API, else the referrers tag), else a legacy `.sig` signature."""
    api_status, descriptors = client.referrers(name, digest)
    tried["referrersApi"] = api_status
    form = "referrers API"
    if api_status != 200:
        index = client.manifest(name, referrers_tag(digest), INDEX_TYPES)
        tried["referrersTag"] = 200 if index else 404
        descriptors = index.descriptors if index and index.is_index else []
        form = f"referrers tag {referrers_tag(digest)}"
    for descriptor in signature_referrers(descriptors):
        found = _referrer_signature(client, name, digest, descriptor)
        if found:
            return {**found, "form": form}
    legacy = _legacy_signature(client, name, digest, tried, public_key)
    return {**legacy, "form": "legacy tag"} if legacy else None


def _referrer_signature(
    client: RegistryClient, name: str, digest: str, descriptor: dict[str, Any]
) -> dict[str, Any] | None:
    """The referrer manifest must name the image digest as its `subject` and carry a layer."""
    referrer = descriptor.get("digest")
    if not isinstance(referrer, str) or not DIGEST.match(referrer):
        return None
    manifest = client.manifest(name, referrer, IMAGE_MANIFEST_TYPES)
    if manifest is None:
        return None
    subject = manifest.document.get("subject")
    if not isinstance(subject, dict) or subject.get("digest") != digest or not manifest.descriptors:
        return None
    artifact_type = manifest.document.get("artifactType") or descriptor.get("artifactType")
    return {"signature": referrer, "artifactType": artifact_type, "layers": len(manifest.descriptors)}


def _legacy_signature(
    client: RegistryClient, name: str, digest: str, tried: dict[str, Any], public_key: str | None = None
) -> dict[str, Any] | None:
    """A `.sig` manifest whose simplesigning layer is signed and whose payload names the image digest;
    with `public_key`, the layer's signature must verify over the payload with it (as `cosign verify
    --key` checks it)."""
    manifest = client.manifest(name, legacy_signature_tag(digest), IMAGE_MANIFEST_TYPES)
    tried["legacyTag"] = 200 if manifest else 404
    if manifest is None:
        return None
    layers = [
        layer
        for layer in manifest.descriptors
        if layer.get("mediaType") == COSIGN_SIMPLESIGNING
        and isinstance(layer.get("annotations"), dict)
        and layer["annotations"].get(COSIGN_SIGNATURE_ANNOTATION)
    ]
    tried["legacySignedLayers"] = len(layers)
    for layer in layers[:8]:
        payload_digest = layer.get("digest")
        if not isinstance(payload_digest, str) or not DIGEST.match(payload_digest):
            continue
        content = client.blob(name, payload_digest)
        signed = _get(_json_or_none(content), "critical", "image", "docker-manifest-digest")
        if signed != digest:
            tried.setdefault("legacyPayloadDigests", []).append(signed)
            continue
        signature = layer["annotations"][COSIGN_SIGNATURE_ANNOTATION]
        if public_key is not None and not signature_verifies(public_key, signature, content):
            tried["legacyKeyMismatches"] = tried.get("legacyKeyMismatches", 0) + 1
            continue
        return {
            "signature": manifest.digest,
            "payload": payload_digest,
            "signedLayers": len(layers),
            "certificate": bool(layer["annotations"].get(COSIGN_CERTIFICATE_ANNOTATION)),
            "keyVerified": public_key is not None,
        }
    return None


def signature_verifies(public_key_pem: str, signature_base64: Any, payload: bytes) -> bool:
    """An ECDSA-SHA256 signature (base64, as cosign annotates it) over the payload, by the PEM key."""
    if not isinstance(signature_base64, str) or len(signature_base64) > 1024:
        return False
    try:
        signature = base64.b64decode(signature_base64, validate=True)
        key = load_pem_public_key(public_key_pem.encode())
        if not isinstance(key, ec.EllipticCurvePublicKey):
            return False
        key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    except (ValueError, InvalidSignature):
        return False
    return True


def _json_or_none(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return None


def _get(document: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(document, dict):
            return None
        document = document.get(key)
    return document


# --- rules -----------------------------------------------------------------------------------------


def prometheus_rule_groups(ctx: Context) -> list[dict[str, Any]]:
    """`GET /api/v1/rules`, once per run (a failure too: every service's check reports it)."""
    if ctx._rules_failure is not None:
        raise ctx._rules_failure
    if ctx._rules is None:
        try:
            ctx._rules = _fetch_rule_groups(ctx.transport, f"{ctx.inputs.prometheus_url}/api/v1/rules")
        except (HttpFailure, CheckError) as failure:
            ctx._rules_failure = failure
            raise
    return ctx._rules


def _fetch_rule_groups(transport: Transport, url: str) -> list[dict[str, Any]]:
    response = transport.request("GET", url, max_body=RULES_MAX_BODY)
    if response.status_code != 200:
        raise CheckError(f"GET {url}: {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        raise CheckError(f"GET {url}: not JSON") from None
    groups = _get(body, "data", "groups")
    if _get(body, "status") != "success" or not isinstance(groups, list):
        raise CheckError(f"GET {url}: not a Prometheus rules answer")
    return [g for g in groups if isinstance(g, dict)]


def _label(item: dict[str, Any], name: str) -> str | None:
    labels = item.get("labels")
    value = labels.get(name) if isinstance(labels, dict) else None
    return value if isinstance(value, str) else None


def group_namespaces(group: dict[str, Any]) -> set[str | None]:
    """The `namespace` labels of a group's rules (None for a rule without one)."""
    return {_label(rule, "namespace") for rule in group.get("rules") or [] if isinstance(rule, dict)}


def stack_groups(
    groups: list[dict[str, Any]], namespace: str
) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
    """The groups of this stack by name (every rule carries its namespace), and the namespaces of the
    groups of the same names from other stacks, which share names across a Prometheus (dev and staging)."""
    loaded: dict[str, dict[str, Any]] = {}
    others: dict[str, set[str]] = {}
    for group in groups:
        name, namespaces = str(group.get("name")), group_namespaces(group)
        if namespaces == {namespace}:
            loaded.setdefault(name, group)
        else:
            others.setdefault(name, set()).update(n or "none" for n in namespaces)
    return loaded, {name: sorted(found) for name, found in others.items()}


def _firing(rule: dict[str, Any], namespace: str) -> int:
    """The rule's alerts firing in the stack's namespace (an alert carries its rule's labels)."""
    alerts = rule.get("alerts") or []
    return sum(
        1
        for a in alerts
        if isinstance(a, dict) and a.get("state") == "firing" and _label(a, "namespace") == namespace
    )


def evaluate_rules(
    groups: list[dict[str, Any]], slo: SloTarget, namespace: str
) -> tuple[bool, list[str], dict[str, Any]]:
    """Pure: the loaded groups of `/api/v1/rules` against the service's SLO outputs. Only the groups
    whose rules carry the stack's `namespace` label count, and only the page alerts firing with it."""
    loaded, others = stack_groups(groups, namespace)
    missing = [name for name in slo.rule_groups if name not in loaded]
    elsewhere = {name: others[name] for name in missing if name in others}
    rules = [
        (name, rule)
        for name in slo.rule_groups
        if name in loaded
        for rule in loaded[name].get("rules") or []
        if isinstance(rule, dict)
    ]
    unhealthy = [
        {
            "group": group,
            "rule": rule.get("name"),
            "health": rule.get("health"),
            "error": rule.get("lastError"),
        }
        for group, rule in rules
        if rule.get("health") != "ok"
    ]
    alerting = [rule for _, rule in rules if rule.get("type") == "alerting"]
    defined = {str(rule.get("name")) for rule in alerting}
    undefined = [a for a in (*slo.page_alerts, *slo.ticket_alerts) if a not in defined]
    firing: dict[str, int] = {}
    for rule in alerting:  # an alert name has a rule per burn-rate window pair
        if rule.get("name") in slo.page_alerts and (count := _firing(rule, namespace)):
            firing[str(rule["name"])] = firing.get(str(rule["name"]), 0) + count
    problems = []
    if missing:
        problem = f"rule groups not loaded for namespace {namespace}: {', '.join(missing)}"
        problem += f" (Prometheus has {len(groups)} groups"
        if elsewhere:
            found = sorted({n for namespaces in elsewhere.values() for n in namespaces})
            problem += f"; {len(elsewhere)} of these names only for namespace {', '.join(found)}"
        problems.append(problem + ")")
    for item in unhealthy:
        why = f": {item['error']}" if item["error"] else ""
        problems.append(f"rule {item['rule']} in {item['group']} is {item['health'] or 'unknown'}{why}")
    if undefined:
        problems.append(f"alerts not defined in the loaded groups: {', '.join(undefined)}")
    if firing:
        problems.append("page alerts firing: " + ", ".join(f"{n} ({c})" for n, c in sorted(firing.items())))
    evidence = {
        "namespace": namespace,
        "ruleGroups": list(slo.rule_groups),
        "missingGroups": missing,
        "missingGroupsInOtherNamespaces": elsewhere,
        "files": sorted({str(loaded[n].get("file")) for n in slo.rule_groups if n in loaded}),
        "rules": len(rules),
        "unhealthyRules": unhealthy,
        "pageAlerts": list(slo.page_alerts),
        "ticketAlerts": list(slo.ticket_alerts),
        "undefinedAlerts": undefined,
        "firingPageAlerts": firing,
    }
    return not problems, problems, evidence


def check_rules(ctx: Context, service: ServiceTarget) -> CheckResult:
    slo = service.slo
    assert slo is not None
    target = f"{ctx.inputs.prometheus_url}/api/v1/rules"
    label = f"{service.name}: "

    def run() -> CheckResult:
        assert ctx.inputs.namespace is not None
        groups = prometheus_rule_groups(ctx)
        passed, problems, evidence = evaluate_rules(groups, slo, ctx.inputs.namespace)
        evidence = {"prometheus": ctx.inputs.prometheus_url, **evidence}
        if not passed:
            return CheckResult("rules", target, False, label + "; ".join(problems), evidence)
        message = (
            f"{label}{len(slo.rule_groups)} rule groups loaded, {evidence['rules']} rules healthy, "
            f"{len(slo.page_alerts)} page alerts defined, none firing in {ctx.inputs.namespace}"
        )
        return CheckResult("rules", target, True, message, evidence)

    return _guarded("rules", target, label, run)


# --- probe -----------------------------------------------------------------------------------------


def check_probe(ctx: Context, service: ServiceTarget) -> CheckResult:
    probe = service.probe
    assert probe is not None
    run = run_probe(probe, ctx.transport.deadline, ctx.verify)
    passed, message, evidence = evaluate_probe(run, probe)
    return CheckResult("probe", probe.url, passed, f"{service.name}: {message}", evidence)


# --- run -------------------------------------------------------------------------------------------


Check = Callable[[Context], CheckResult]
ServiceCheck = Callable[[Context, ServiceTarget], CheckResult]
SERVICE_CHECKS: dict[str, ServiceCheck] = {
    "images": check_images,
    "signatures": check_signatures,
    "rules": check_rules,
    "probe": check_probe,
}


def _for_service(check: ServiceCheck, service: ServiceTarget) -> Check:
    def run(ctx: Context) -> CheckResult:
        result = check(ctx, service)
        result.service = service.name
        return result

    return run


def _applies(name: str, service: ServiceTarget) -> bool:
    needed = {
        "images": service.image,
        "signatures": service.image,
        "rules": service.slo,
        "probe": service.probe,
    }
    return needed[name] is not None


def planned_checks(inputs: VerifyInput, only: Sequence[str]) -> list[tuple[str, str, Check]]:
    """(check name, what it looks at, how to run it), in the order of CHECKS."""
    planned: list[tuple[str, str, Check]] = []
    if "registry" in only and inputs.registry:
        planned.append(("registry", inputs.registry.url, check_registry))
    for name, check in SERVICE_CHECKS.items():
        if name in only:
            planned += [(name, s.name, _for_service(check, s)) for s in inputs.services if _applies(name, s)]
    return planned


def run_checks(inputs: VerifyInput, options: VerifyOptions, progress: Progress) -> list[CheckResult]:
    transport = Transport(
        deadline=Deadline(options.timeout),
        verify=str(options.ca_bundle) if options.ca_bundle else True,
        progress=progress,
    )
    ctx = Context(inputs=inputs, options=options, transport=transport)
    results = []
    try:
        for name, target, check in planned_checks(inputs, options.only):
            progress(f"verify: {name} {target}")
            with transport.check(options.timeout):  # one deadline for the whole check
                results.append(check(ctx))
    finally:
        transport.close()
    return results


def format_line(result: CheckResult) -> str:
    return f"{'✅' if result.passed else '❌'} {result.name:<10} {result.message}"


def summary_line(results: Sequence[CheckResult], seconds: float) -> str:
    failed = sum(not r.passed for r in results)
    verdict = "all passed" if not failed else f"{failed} failed"
    return f"verify: {len(results)} check{'s' if len(results) != 1 else ''}, {verdict} ({seconds:.1f}s)"


def report_document(results: Sequence[CheckResult]) -> dict[str, Any]:
    return {"checks": [r.document() for r in results], "passed": all(r.passed for r in results)}


def verify(options: VerifyOptions, out: TextIO, err: TextIO, as_json: bool = False) -> int:
    """The whole command: read the outputs, run the checks, print; the exit code."""
    started = time.perf_counter()
    try:
        inputs = load_input(options)
    except InputError as error:
        for line in error.problems:
            print(f"error: {line}", file=err)
        return EXIT_USAGE

    def progress(message: str) -> None:
        print(message, file=err, flush=True)

    if inputs.registry is not None and inputs.registry.password is None:
        progress("verify: registry.password is masked in the plan: images and signatures pull anonymously")
    results = run_checks(inputs, options, progress)
    if as_json:
        print(json.dumps(report_document(results), indent=2, sort_keys=True), file=out)
    else:
        for result in results:
            print(format_line(result), file=out)
        print(summary_line(results, time.perf_counter() - started), file=out)
    return EXIT_OK if all(r.passed for r in results) else EXIT_FAILED


# --- command line ----------------------------------------------------------------------------------


def add_parser(commands: Any) -> None:
    """The `verify` subcommand's arguments (called by roadbike.cli)."""
    parser = commands.add_parser(
        "verify",
        help="check the live delivery chain from the stack outputs",
        description="Check the registry, the multi-arch images, their cosign signatures, the SLO rules in "
        "Prometheus and the SLI probe of each service, from `pulumi stack output --json --show-secrets`. "
        "Exit 0: all checks pass; 1: a check fails; 2: bad input or usage; 3: internal error; 130: interrupted.",
    )
    parser.add_argument("--outputs", required=True, type=Path, metavar="FILE", help="stack outputs JSON")
    parser.add_argument(
        "--only", nargs="+", choices=CHECKS, metavar="CHECK", help=f"run only: {' '.join(CHECKS)}"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="S",
        help="time budget of each check, all its requests and retries (60)",
    )
    parser.add_argument("--prometheus-url", metavar="URL", help="Prometheus to ask (default: prometheus.url)")
    parser.add_argument("--ca-bundle", type=Path, metavar="PATH", help="CA certificates to trust for TLS")
    parser.add_argument(
        "--probe-requests",
        type=int,
        metavar="N",
        help=f"probe requests per service (1..{MAX_PROBE_REQUESTS})",
    )
    parser.add_argument(
        "--probe-concurrency",
        type=int,
        metavar="C",
        help=f"probe requests in flight (1..{MAX_PROBE_CONCURRENCY})",
    )


def options_from_args(args: argparse.Namespace) -> VerifyOptions:
    problems = []
    if not args.timeout > 0:
        problems.append(f"--timeout: must be more than 0 seconds (got {args.timeout:g})")
    for flag, value, most in (
        ("--probe-requests", args.probe_requests, MAX_PROBE_REQUESTS),
        ("--probe-concurrency", args.probe_concurrency, MAX_PROBE_CONCURRENCY),
    ):
        if value is not None and value < 1:
            problems.append(f"{flag}: must be at least 1 (got {value})")
        elif value is not None and value > most:
            problems.append(f"{flag}: must be at most {most} (got {value})")
    if args.ca_bundle is not None and not args.ca_bundle.is_file():
        problems.append(f"--ca-bundle {args.ca_bundle}: not a file")
    if args.prometheus_url is not None and not HTTP_URL.fullmatch(args.prometheus_url):
        problems.append(f"--prometheus-url: {args.prometheus_url!r} is not an http(s) URL")
    if problems:
        raise InputError(problems)
    return VerifyOptions(
        outputs=args.outputs,
        only=tuple(c for c in CHECKS if c in (args.only or CHECKS)),
        timeout=args.timeout,
        prometheus_url=args.prometheus_url.rstrip("/") if args.prometheus_url else None,
        ca_bundle=args.ca_bundle,
        probe_requests=args.probe_requests,
        probe_concurrency=args.probe_concurrency,
    )


def run_command(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    try:
        options = options_from_args(args)
    except InputError as error:
        for line in error.problems:
            print(f"error: {line}", file=err)
        return EXIT_USAGE
    try:
        return verify(options, out, err, as_json=args.json)
    except KeyboardInterrupt:
        print("error: interrupted", file=err)
        return EXIT_INTERRUPTED
