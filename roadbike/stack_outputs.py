"""The stack outputs `roadbike verify` reads: `pulumi stack output --json --show-secrets`, or a plan.json.

Only the keys the selected checks need are read; each missing, masked or malformed key is one problem
line naming the file and the key path (exit 2), before any request is made. An image's `digest` and `ref`
are optional (the platform knows them only when it builds the image itself); without them verify checks
the digest the tag points at in the registry. A plan masks every secret: its images are pulled without
credentials (only the registry check needs the password).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from components.config import HTTP_URL as HTTP_URL_PATTERN
from roadbike.oci import DIGEST, TAG
from roadbike.program import SECRET_SIG_KEY
from roadbike.redact import UNKNOWN_SHOWN

CHECKS = ("registry", "images", "signatures", "rules", "probe")
DEFAULT_TIMEOUT_SECONDS = 60.0
# What one run may ask of a probe, from the outputs or the flags: every request is held in memory.
MAX_PROBE_REQUESTS = 100_000
MAX_PROBE_CONCURRENCY = 1_000

# What `pulumi stack output --json` prints for a secret without --show-secrets, and the engine's
# secret envelope (keyed by SECRET_SIG_KEY) when a raw state value slips through.
MASKED_TEXTS = frozenset({"[secret]", "[redacted]", "********"})


class InputError(Exception):
    """Bad input (exit 2): one line per problem, naming the file and the key path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class RegistryTarget:
    host: str
    url: str
    username: str
    password: str | None  # None: masked in a plan, pull anonymously


@dataclass(frozen=True)
class ImageTarget:
    repository: str
    name: str
    tag: str
    digest: str | None = None  # None: the outputs have none, the registry resolves the tag
    ref: str | None = None

    @property
    def tagged(self) -> str:
        return f"{self.repository}:{self.tag}"

    @property
    def target(self) -> str:
        return self.ref or self.tagged


@dataclass(frozen=True)
class SloTarget:
    rule_groups: tuple[str, ...]
    page_alerts: tuple[str, ...]
    ticket_alerts: tuple[str, ...]


@dataclass(frozen=True)
class ProbeTarget:
    url: str
    requests: int
    concurrency: int
    latency_threshold_seconds: float
    success_ratio: float
    error_ratio: float


@dataclass(frozen=True)
class ServiceTarget:
    name: str
    platforms: tuple[str, ...] = ()
    image: ImageTarget | None = None
    signing_mode: str | None = None
    # keypair signing: the PEM public key signatures must verify with (None: unknown in a plan)
    public_key: str | None = None
    slo: SloTarget | None = None
    probe: ProbeTarget | None = None


@dataclass(frozen=True)
class VerifyInput:
    registry: RegistryTarget | None
    prometheus_url: str | None
    namespace: str | None  # the stack's namespace: its SLO rules carry it as the `namespace` label
    services: tuple[ServiceTarget, ...]


@dataclass(frozen=True)
class VerifyOptions:
    outputs: Path
    only: tuple[str, ...] = CHECKS
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    prometheus_url: str | None = None
    ca_bundle: Path | None = None
    probe_requests: int | None = None
    probe_concurrency: int | None = None


_MISSING = object()


def _is_masked(value: Any) -> bool:
    return (isinstance(value, str) and value in MASKED_TEXTS) or (
        isinstance(value, dict) and SECRET_SIG_KEY in value
    )


class _Reader:
    """Reads typed values at key paths, collecting one problem line per bad or missing key."""

    def __init__(self, display: str, root: Any, prefix: str, masked_text: str) -> None:
        self.display = display
        self.root = root
        self.prefix = prefix
        self.masked_text = masked_text
        self.problems: list[str] = []

    def problem(self, path: Sequence[str], text: str) -> None:
        self.problems.append(f"{self.display}: {self.prefix}{'.'.join(path)}: {text}")

    def masked(self, path: Sequence[str]) -> bool:
        """Whether the value at `path`, or one above it, is masked (no problem is recorded)."""
        value = self.root
        for key in path:
            if _is_masked(value) or not isinstance(value, dict):
                return _is_masked(value)
            value = value.get(key)
        return _is_masked(value)

    def get(self, path: Sequence[str], required: bool = True) -> Any:
        value = self.root
        for depth, key in enumerate(path):
            if _is_masked(value):
                self.problem(path[:depth], self.masked_text)
                return _MISSING
            if not isinstance(value, dict) or key not in value or value[key] is None:
                if required:
                    self.problem(path, "missing")
                return _MISSING
            value = value[key]
        if _is_masked(value):
            self.problem(path, self.masked_text)
            return _MISSING
        return value

    def text(
        self,
        path: Sequence[str],
        pattern: re.Pattern[str] | None = None,
        what: str = "",
        required: bool = True,
    ) -> str | None:
        value = self.get(path, required)
        if value is _MISSING:
            return None
        if not isinstance(value, str) or not value:
            shown = "a secret" if "password" in path else json.dumps(value)[:200]  # never echo a secret
            self.problem(path, f"must be a non-empty string (got {shown})")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.problem(path, f"{value!r} is not {what}")
            return None
        return value

    def number(self, path: Sequence[str], low: float, high: float, integer: bool = False) -> float | None:
        value = self.get(path)
        if value is _MISSING:
            return None
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and integer and not float(value).is_integer():
            ok = False
        if not ok or not low <= float(value) <= high:
            kind = "an integer" if integer else "a number"
            self.problem(path, f"must be {kind} from {low:g} to {high:g} (got {json.dumps(value)})")
            return None
        return float(value)

    def texts(self, path: Sequence[str]) -> tuple[str, ...] | None:
        value = self.get(path)
        if value is _MISSING:
            return None
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            self.problem(path, f"must be a list of names (got {json.dumps(value)})")
            return None
        return tuple(value)


_MASKED_TEXT = "is a masked secret; the outputs must be read with `pulumi stack output --json --show-secrets`"
_PLAN_MASKED_TEXT = (
    "is a masked secret, as every secret in a plan; a check that needs it reads the outputs of "
    "`pulumi stack output --json --show-secrets` after `pulumi up`"
)
HTTP_URL = re.compile(HTTP_URL_PATTERN)


def read_outputs_document(path: Path, display: str) -> tuple[Any, str]:
    """The outputs object and the key prefix: a `pulumi stack output --json` file, or a plan.json."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError([f"{display}: not found"]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError([f"{display}: unreadable: {error}"]) from None
    except json.JSONDecodeError as error:
        raise InputError(
            [f"{display}: not JSON (line {error.lineno}, column {error.colno}): {error.msg}"]
        ) from None
    if not isinstance(document, dict):
        raise InputError([f"{display}: must be a JSON object of stack outputs"])
    if isinstance(document.get("outputs"), dict) and isinstance(document.get("resources"), list):
        return document["outputs"], "outputs."
    return document, ""


def parse_outputs(
    root: Any, display: str, options: VerifyOptions, prefix: str = "", from_plan: bool = False
) -> VerifyInput:
    """The targets the selected checks need; every missing or bad key is one problem line (InputError).

    `from_plan`: the outputs of a plan, whose secrets are masked by design; the registry password is then
    needed only by the registry check.
    """
    reader = _Reader(display, root, prefix, _PLAN_MASKED_TEXT if from_plan else _MASKED_TEXT)
    needs_registry = bool({"registry", "images", "signatures"} & set(options.only))
    needs_password = "registry" in options.only or not from_plan
    registry = _registry_target(reader, needs_password) if needs_registry else None
    prometheus_url = namespace = None
    if "rules" in options.only:
        prometheus_url = options.prometheus_url or _prometheus_url(reader)
        namespace = reader.text(("namespace",))
    services = _service_targets(reader, registry, options)
    if reader.problems:
        raise InputError(list(dict.fromkeys(reader.problems)))
    return VerifyInput(
        registry=registry, prometheus_url=prometheus_url, namespace=namespace, services=services
    )


def _registry_target(reader: _Reader, needs_password: bool) -> RegistryTarget | None:
    host = reader.text(("registry", "host"))
    url = reader.text(("registry", "url"), HTTP_URL, "an http(s) URL")
    username = reader.text(("registry", "username"))
    anonymous = not needs_password and reader.masked(("registry", "password"))
    password = None if anonymous else reader.text(("registry", "password"))
    if host is None or url is None or username is None or (password is None and not anonymous):
        return None
    return RegistryTarget(host=host, url=url.rstrip("/"), username=username, password=password)


def _prometheus_url(reader: _Reader) -> str | None:
    known = len(reader.problems)
    if reader.get(("prometheus", "url"), required=False) is _MISSING:
        if len(reader.problems) == known:
            reader.problem(("prometheus", "url"), "missing; pass --prometheus-url for the rules check")
        return None
    url = reader.text(("prometheus", "url"), HTTP_URL, "an http(s) URL")
    return url.rstrip("/") if url else None


def _service_targets(
    reader: _Reader, registry: RegistryTarget | None, options: VerifyOptions
) -> tuple[ServiceTarget, ...]:
    services = reader.get(("services",))
    if services is _MISSING:
        return ()
    if not isinstance(services, dict) or not services:
        reader.problem(("services",), "must be a non-empty mapping of service name to its outputs")
        return ()
    targets = tuple(_service_target(reader, name, registry, options) for name in sorted(services))
    if options.only == ("probe",) and not any(t.probe for t in targets) and not reader.problems:
        reader.problem(("services", "*", "probe"), "missing: no service has a probe to run")
    return targets


def _service_target(
    reader: _Reader, name: str, registry: RegistryTarget | None, options: VerifyOptions
) -> ServiceTarget:
    base = ("services", name)
    platforms = reader.get((*base, "platforms"), required=False)
    image = None
    if {"images", "signatures"} & set(options.only):
        image = _image_target(reader, base, registry)
    signing = reader.get((*base, "signing", "mode"), required=False)
    public_key = None
    if signing == "keypair" and "signatures" in options.only:
        public_key = _public_key(reader, (*base, "signing", "publicKey"))
    slo = _slo_target(reader, base) if "rules" in options.only else None
    probe = None
    if "probe" in options.only and reader.get((*base, "probe"), required=False) is not _MISSING:
        probe = _probe_target(reader, (*base, "probe"), options)
    return ServiceTarget(
        name=name,
        platforms=tuple(p for p in platforms if isinstance(p, str)) if isinstance(platforms, list) else (),
        image=image,
        signing_mode=signing if isinstance(signing, str) else None,
        public_key=public_key,
        slo=slo,
        probe=probe,
    )


PUBLIC_KEY_MAX_CHARS = 4096


def _public_key(reader: _Reader, path: tuple[str, ...]) -> str | None:
    """The service's cosign public key (an ECDSA key in PEM), or None while a plan has it unknown."""
    value = reader.get(path)
    if value is _MISSING or value == UNKNOWN_SHOWN:
        return None
    what = "must be the PEM public key of the service's cosign key pair (as `pulumi stack output` prints it)"
    if not isinstance(value, str) or len(value) > PUBLIC_KEY_MAX_CHARS:
        reader.problem(path, what)
        return None
    try:
        key = load_pem_public_key(value.encode())
    except ValueError:
        reader.problem(path, what)
        return None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        reader.problem(path, f"{what}: an ECDSA key (got another kind)")
        return None
    return value


def _image_target(
    reader: _Reader, base: tuple[str, ...], registry: RegistryTarget | None
) -> ImageTarget | None:
    path = (*base, "image")
    known = len(reader.problems)
    repository = reader.text((*path, "repository"))
    tag = reader.text((*path, "tag"), TAG, "an image tag ([A-Za-z0-9_][A-Za-z0-9._-], at most 128)")
    digest = reader.text((*path, "digest"), DIGEST, "a sha256 digest (sha256:<64 hex>)", required=False)
    ref = reader.text((*path, "ref"), required=False)
    if repository is None or tag is None or len(reader.problems) > known:
        return None
    if (digest is None) != (ref is None):  # both or neither: the platform builds the image, or it does not
        reader.problem((*path, "ref" if digest else "digest"), "missing")
        return None
    if digest is not None and ref != f"{repository}@{digest}":
        reader.problem((*path, "ref"), f"{ref!r} is not image.repository@image.digest")
        return None
    if registry is None:
        return None
    if not repository.startswith(f"{registry.host}/"):
        reader.problem((*path, "repository"), f"{repository!r} is not in registry.host {registry.host!r}")
        return None
    return ImageTarget(
        repository=repository,
        name=repository.removeprefix(f"{registry.host}/"),
        tag=tag,
        digest=digest,
        ref=ref,
    )


def _slo_target(reader: _Reader, base: tuple[str, ...]) -> SloTarget | None:
    groups = reader.texts((*base, "slo", "ruleGroups"))
    page = reader.texts((*base, "slo", "pageAlerts"))
    ticket = reader.texts((*base, "slo", "ticketAlerts"))
    if groups is None or page is None or ticket is None:
        return None
    return SloTarget(rule_groups=groups, page_alerts=page, ticket_alerts=ticket)


def _probe_target(reader: _Reader, path: tuple[str, ...], options: VerifyOptions) -> ProbeTarget | None:
    url = reader.text((*path, "url"), HTTP_URL, "an http(s) URL")
    count = options.probe_requests or reader.number((*path, "requests"), 1, MAX_PROBE_REQUESTS, integer=True)
    concurrency = options.probe_concurrency or reader.number(
        (*path, "concurrency"), 1, MAX_PROBE_CONCURRENCY, integer=True
    )
    latency = reader.number((*path, "latencyThresholdSeconds"), 0.000_001, 3_600)
    success = reader.number((*path, "successRatio"), 0, 1)
    error = reader.number((*path, "errorRatio"), 0, 1)
    if None in (url, count, concurrency, latency, success, error):
        return None
    return ProbeTarget(
        url=str(url),
        requests=int(count or 0),
        concurrency=int(concurrency or 0),
        latency_threshold_seconds=float(latency or 0),
        success_ratio=float(success or 0),
        error_ratio=float(error or 0),
    )


def load_input(options: VerifyOptions, display: str | None = None) -> VerifyInput:
    shown = display or str(options.outputs)
    root, prefix = read_outputs_document(options.outputs, shown)
    return parse_outputs(root, shown, options, prefix, from_plan=bool(prefix))
