"""The typed stack config: the one place that reads `roadbike:*` values.

Everything else receives a `StackConfig`. Unknown keys, wrong types and unsafe-by-construction values are
refused here with one line per problem that names the stack file and the key path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

PROJECT = "roadbike"

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$"
HTTP_URL = r"^https?://[^\s/]+(/\S*)?$"
# https://semver.org/#is-there-a-suggested-regular-expression-regex-to-check-a-semver-string
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
# time.ParseDuration: a sequence of decimal numbers with a unit, e.g. "300ms", "1.5h", "2h45m".
GO_DURATION = re.compile(r"^(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+$")
GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
GO_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
# What Chaos Mesh's NetworkChaos schema accepts for delay latency and jitter.
NETEM_TIME = re.compile(r"^[0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h)$")
GITHUB_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9_])?$")
GO_VERSION = re.compile(r"^1\.\d+(?:\.\d+)?$")
HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*(:\d{1,5})?$"
)
CRON_FIELD = re.compile(r"^[0-9A-Za-z*?/,\-LW#]+$")
# A PromQL instant-vector selector: a metric name and optional label matchers, e.g. `x_total{code=~"5.."}`.
_MATCHER = r"""\s*[A-Za-z_][A-Za-z0-9_]*\s*(?:=~|!~|!=|=)\s*(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*"""
PROMQL_SELECTOR = re.compile(rf"^[A-Za-z_:][A-Za-z0-9_:]*(?:\{{(?:{_MATCHER}(?:,{_MATCHER})*,?)?\s*\}})?$")
# A Kubernetes port name (IANA_SVC_NAME): at most 15 characters, a letter, no leading, trailing or double '-'.
PORT_NAME = re.compile(r"^(?=.{1,15}$)(?=.*[a-z])(?!.*--)[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
SUPPORTED_PLATFORMS = ("linux/amd64", "linux/arm64")
# The managed registry's name (components.naming.REGISTRY_SERVICE): a service's objects would collide with it.
REGISTRY_NAME = "registry"
RESERVED_SERVICE_NAMES = frozenset({REGISTRY_NAME})


def go_duration_seconds(value: str) -> float:
    """Seconds in a Go duration string already checked against GO_DURATION."""
    return sum(float(num) * GO_UNIT_SECONDS[unit] for num, unit in GO_DURATION_PART.findall(value))


def check_go_duration(value: str) -> str:
    if not isinstance(value, str) or not GO_DURATION.match(value):
        raise ValueError(f"{value!r} is not a Go duration (e.g. 60s, 1m30s, 100ms)")
    return value


def check_dns_label(value: str) -> str:
    if len(value) > 63 or not DNS_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a DNS-1123 label (lower case letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters)"
        )
    return value


def _check_service_name(value: str) -> str:
    if value in RESERVED_SERVICE_NAMES:
        raise ValueError(
            f"{value!r} is the name of one of the platform's own objects (reserved: "
            f"{', '.join(sorted(RESERVED_SERVICE_NAMES))}); rename the service"
        )
    return check_dns_label(value)


def check_chaos_schedule(value: str) -> str:
    """Chaos Mesh accepts a 5-field cron (6 with seconds), a @descriptor or `@every <Go duration>`."""
    if value.startswith("@every "):
        check_go_duration(value.removeprefix("@every ").strip())
        return value
    if value in {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}:
        return value
    fields = value.split()
    if len(fields) not in (5, 6) or not all(CRON_FIELD.match(f) for f in fields):
        raise ValueError(f"{value!r} is not a cron schedule (5 or 6 fields) nor '@every <duration>'")
    return value


# Hours (in the Chaos Mesh controller's time zone) when staging may run chaos.
NIGHT_HOURS = frozenset({22, 23, 0, 1, 2, 3, 4, 5})
MIDNIGHT_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight"}


def is_nightly(schedule: str) -> bool:
    """True when a chaos schedule only ever fires in NIGHT_HOURS (a cron hour field of night hours)."""
    if schedule in MIDNIGHT_DESCRIPTORS:
        return True
    fields = schedule.split()
    if schedule.startswith("@") or len(fields) not in (5, 6):
        return False
    hours: set[int] = set()
    for item in fields[-4].split(","):
        first, _, last = item.partition("-")
        if not first.isdigit() or not (last or first).isdigit():
            return False
        hours.update(range(int(first), int(last or first) + 1))
    return bool(hours) and hours <= NIGHT_HOURS


def check_chaos_environment(value: str, info: ValidationInfo) -> str:
    environment = (info.context or {}).get("environment")
    if environment == "staging" and not is_nightly(value):
        raise ValueError(
            f"staging runs chaos only at night: use a cron whose hours are within 22-05, "
            f"e.g. '0 2 * * *' or '@daily' (got {value!r})"
        )
    return value


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, strict=False)


class GitHubConfig(Model):
    owner: str
    webhook_url: str | None = Field(default=None, alias="webhookUrl")
    prod_reviewers: list[int] = Field(default_factory=list, alias="prodReviewers", max_length=6)
    # The GitHub App `pulumi up` runs as: it commits the generated files past the default branch ruleset.
    deployer_app_id: int | None = Field(default=None, alias="deployerAppId", gt=0)
    # Exactly one stack per repository creates it and its repository-wide settings (dev, deployed first);
    # every stack adds its own tier: environment, secrets, release workflow.
    owns_repositories: bool = Field(default=True, alias="ownsRepositories")
    # false: the stack leaves the GitHub side out (no repository, pipeline or Actions secret), e.g. to
    # preview or deploy only the cluster side where no GitHub token or provider is at hand.
    enabled: bool = True

    _owner = field_validator("owner")(lambda v: _check_github_name(v))

    @field_validator("webhook_url")
    @classmethod
    def _https_webhook(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("https://"):
            raise ValueError(f"{value!r} must be an https:// URL")
        return value

    @model_validator(mode="after")
    def _webhook_only_from_the_owner(self) -> GitHubConfig:
        if self.webhook_url is not None and not self.owns_repositories:
            raise ValueError(
                "webhookUrl is a repository setting, made only by the stack that owns the repositories "
                "(ownsRepositories: false here): set it in that stack and remove it here"
            )
        return self


def _check_github_name(value: str) -> str:
    if not GITHUB_NAME.match(value):
        raise ValueError(f"{value!r} is not a valid GitHub name")
    return value


class RegistryConfig(Model):
    mode: Literal["managed", "external"] = "managed"
    host: str | None = None
    scheme: Literal["https", "http"] = "https"
    username: str | None = None
    # external: the account's password or token, `pulumi config set --secret --path roadbike:registry.password`
    password: SecretStr | None = None
    # managed: the PersistentVolumeClaim, and the cert-manager ClusterIssuer that signs the registry's TLS
    storage_size: str = Field(default="20Gi", alias="storageSize", pattern=r"^[1-9][0-9]*(Mi|Gi|Ti)$")
    storage_class: str | None = Field(default=None, alias="storageClass", pattern=DNS_SUBDOMAIN)
    tls_issuer: str = Field(default="roadbike-ca", alias="tlsIssuer", pattern=DNS_SUBDOMAIN)

    @field_validator("host")
    @classmethod
    def _hostname(cls, value: str | None) -> str | None:
        if value is not None and not HOSTNAME.match(value):
            raise ValueError(f"{value!r} is not a host name (lower case, optional :port, no scheme)")
        return value

    @model_validator(mode="after")
    def _external_needs_host(self) -> RegistryConfig:
        if self.mode == "external" and not self.host:
            raise ValueError("host is required when mode is external")
        if self.mode == "external" and self.username is not None and self.password is None:
            raise ValueError(
                "an external registry with a username needs its password, as a secret: "
                f"pulumi config set --secret --path '{PROJECT}:registry.password' \"$REGISTRY_TOKEN\""
            )
        return self


class Deployer(Model):
    """The identity `pulumi up` runs as; RBAC that the platform grants in its namespace is bound to it."""

    kind: Literal["ServiceAccount", "User", "Group"] = "ServiceAccount"
    name: str = Field(default="roadbike-deployer", min_length=1)
    namespace: str | None = None

    _namespace = field_validator("namespace")(lambda v: v if v is None else check_dns_label(v))

    @model_validator(mode="after")
    def _namespace_only_for_service_accounts(self) -> Deployer:
        if self.kind != "ServiceAccount" and self.namespace is not None:
            raise ValueError(f"a {self.kind} has no namespace; remove namespace")
        return self


class KubernetesConfig(Model):
    namespace: str
    pod_security: Literal["restricted", "baseline", "privileged"] = Field(
        default="restricted", alias="podSecurity"
    )
    deployer: Deployer = Field(default_factory=Deployer)

    _namespace = field_validator("namespace")(lambda v: check_dns_label(v))


class SigningConfig(Model):
    mode: Literal["keypair", "keyless", "none"] = "keypair"


# A Prometheus duration (model.ParseDuration): units in descending order, e.g. "15d", "1w2d", "720h".
PROMETHEUS_DURATION = re.compile(
    r"^(?=.)(\d{1,6}y)?(\d{1,6}w)?(\d{1,6}d)?(\d{1,6}h)?(\d{1,6}m)?(\d{1,6}s)?(\d{1,6}ms)?$"
)
PROMETHEUS_UNIT_SECONDS = {"y": 31536000, "w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}


def prometheus_duration_seconds(value: str) -> float:
    """Seconds in a duration already checked against PROMETHEUS_DURATION."""
    return sum(int(n) * PROMETHEUS_UNIT_SECONDS[u] for n, u in re.findall(r"(\d+)(ms|[ywdhms])", value))


# A latency threshold is a histogram bucket's upper bound: client libraries write buckets with a few
# significant digits, between microseconds and a day.
BUCKET_DIGITS = 6
BUCKET_RANGE = (0.0001, 100000.0)


def check_bucket_bound(value: float) -> float:
    """A threshold a histogram bucket can have: at most 6 significant digits, 0.0001 to 100000 seconds."""
    low, high = BUCKET_RANGE
    if not low <= value <= high:
        raise ValueError(f"{value!r} is outside {low:g} to {high:g} seconds, the range of histogram buckets")
    nearest = float(f"{value:.{BUCKET_DIGITS}g}")
    if nearest != value:
        raise ValueError(
            f"{value!r} has more significant digits than a histogram bucket will have; "
            f"the nearest bucket bound is {nearest!r}"
        )
    return value


LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


class PrometheusConfig(Model):
    """The stack's Prometheus: the labels it selects rules and monitors by, its URL, the runbooks."""

    rule_selector_labels: dict[str, str] = Field(
        default_factory=lambda: {"release": "kube-prometheus-stack"}, alias="ruleSelectorLabels"
    )
    url: str | None = Field(default=None, pattern=HTTP_URL)
    runbook_base_url: str | None = Field(default=None, alias="runbookBaseUrl", pattern=HTTP_URL)
    # Prometheus' --storage.tsdb.retention.time: an SLO period longer than it cannot be covered.
    retention: str | None = None

    @field_validator("retention")
    @classmethod
    def _retention(cls, value: str | None) -> str | None:
        if value is not None and not PROMETHEUS_DURATION.match(value):
            raise ValueError(f"{value!r} is not a Prometheus duration like 15d or 720h")
        return value

    @field_validator("rule_selector_labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, label in value.items():
            if not LABEL_KEY.match(key) or not LABEL_VALUE.match(label):
                raise ValueError(f"{key}: {label!r} is not a Kubernetes label")
        return value


class Sli(Model):
    type: Literal["ratio", "latency"]
    errors: str | None = None
    total: str | None = None
    histogram: str | None = None
    threshold_seconds: float | None = Field(default=None, alias="thresholdSeconds", gt=0)

    @field_validator("threshold_seconds")
    @classmethod
    def _bucket_bound(cls, value: float | None) -> float | None:
        return None if value is None else check_bucket_bound(value)

    @field_validator("errors", "total", "histogram")
    @classmethod
    def _selector(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not PROMQL_SELECTOR.match(value.strip()):
            raise ValueError(f'{value!r} is not a PromQL selector like http_requests_total{{code=~"5.."}}')
        if info.field_name == "histogram" and value.split("{")[0].endswith(("_bucket", "_count", "_sum")):
            raise ValueError(f"{value!r}: name the histogram itself (without _bucket, _count or _sum)")
        return value.strip()

    @model_validator(mode="after")
    def _fields_for_type(self) -> Sli:
        needed = ("errors", "total") if self.type == "ratio" else ("histogram", "threshold_seconds")
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            aliases = {"threshold_seconds": "thresholdSeconds"}
            names = ", ".join(aliases.get(m, m) for m in missing)
            raise ValueError(f"a {self.type} SLI needs {names}")
        if self.type == "ratio" and self.errors == self.total:
            raise ValueError("errors and total are the same selector: errors must select the failed requests")
        return self


class Slo(Model):
    name: str
    objective: float = Field(gt=0, lt=100, description="percent over the SLO period")
    sli: Sli
    period: Literal["28d", "30d"] = "30d"
    # A burn-rate tier fires only when its long window counted at least this many requests.
    min_events: int | None = Field(default=None, alias="minEvents", ge=1, le=1_000_000_000)

    _name = field_validator("name")(lambda v: check_dns_label(v))


class ChaosExperiment(Model):
    name: str
    type: Literal["network-delay", "cpu-stress", "pod-kill"]
    schedule: str
    duration: str = "60s"
    latency: str | None = None
    jitter: str | None = None
    correlation: int | None = Field(default=None, ge=0, le=100)
    load: int | None = Field(default=None, ge=0, le=100)
    workers: int | None = Field(default=None, ge=1, le=64)
    grace_period: int | None = Field(default=None, alias="gracePeriod", ge=0)

    _name = field_validator("name")(lambda v: check_dns_label(v))
    _schedule = field_validator("schedule")(lambda v: check_chaos_schedule(v))
    _schedule_environment = field_validator("schedule")(check_chaos_environment)
    _durations = field_validator("duration", "latency", "jitter")(
        lambda v: v if v is None else check_go_duration(v)
    )

    @field_validator("latency", "jitter")
    @classmethod
    def _netem_time(cls, value: str | None) -> str | None:
        if value is not None and not NETEM_TIME.match(value):
            raise ValueError(f"{value!r} must be one number and one unit (ns, us, ms, s, m, h), e.g. 100ms")
        return value

    @model_validator(mode="after")
    def _fields_for_type(self) -> ChaosExperiment:
        if self.type == "network-delay" and self.latency is None:
            raise ValueError("a network-delay experiment needs latency")
        if self.type == "cpu-stress" and self.load is None:
            raise ValueError("a cpu-stress experiment needs load")
        every = self.schedule.removeprefix("@every ").strip()
        repeats_within = self.schedule.startswith("@every ") and self.type != "pod-kill"
        if repeats_within and go_duration_seconds(self.duration) >= go_duration_seconds(every):
            raise ValueError(f"duration {self.duration} must be shorter than the interval {every}")
        return self


class SliProbe(Model):
    """A post-deploy SLI probe of the service (`roadbike verify`): N requests to a health endpoint.

    Thresholds default to the service's SLOs: p95 latency from its latency SLI, success ratio from its
    ratio SLI's objective, error ratio 1 - success ratio.
    """

    url: str = Field(pattern=HTTP_URL)
    requests: int = Field(default=50, ge=1, le=10_000)
    concurrency: int = Field(default=5, ge=1, le=100)
    latency_threshold_seconds: float | None = Field(default=None, alias="latencyThresholdSeconds", gt=0)
    success_ratio: float | None = Field(default=None, alias="successRatio", gt=0, le=1)
    error_ratio: float | None = Field(default=None, alias="errorRatio", ge=0, lt=1)


class ChaosOptIn(Model):
    """A prod service's explicit consent to chaos: a change approval and a cap on each experiment."""

    approval: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/#-]{0,62}$")
    max_duration: str = Field(alias="maxDuration")

    _max_duration = field_validator("max_duration")(lambda v: check_go_duration(v))


class Service(Model):
    name: str
    repository: str
    go_version: str = Field(alias="goVersion")
    platforms: list[str] = Field(min_length=1)
    version: str
    coverage_threshold: float = Field(default=80, alias="coverageThreshold", ge=0, le=100)
    # The Go package the workflows build into the service binary, relative to the repository root.
    main_package: str = Field(
        default=".", alias="mainPackage", pattern=r"^\.(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$"
    )
    # The commit (full SHA) the platform builds the bootstrap image from; unset: the release builds it.
    bootstrap_commit: str | None = Field(default=None, alias="bootstrapCommit", pattern=r"^[0-9a-f]{40}$")
    slos: list[Slo] = Field(default_factory=list)
    chaos: list[ChaosExperiment] = Field(default_factory=list)
    chaos_opt_in: ChaosOptIn | None = Field(default=None, alias="chaosOptIn")
    error_budget_frozen: bool = Field(default=False, alias="errorBudgetFrozen")
    probe: SliProbe | None = None
    # The named Service port and path Prometheus scrapes (the ServiceMonitor endpoint).
    metrics_port: str = Field(default="http", alias="metricsPort")
    metrics_path: str = Field(default="/metrics", alias="metricsPath", pattern=r"^/[A-Za-z0-9._~/-]*$")

    @field_validator("metrics_port")
    @classmethod
    def _port_name(cls, value: str) -> str:
        if not PORT_NAME.match(value):
            raise ValueError(f"{value!r} is not a Service port name (IANA_SVC_NAME, e.g. http or metrics)")
        return value

    _name = field_validator("name")(lambda v: _check_service_name(v))
    _repository = field_validator("repository")(lambda v: _check_github_name(v))

    @field_validator("go_version")
    @classmethod
    def _go_version(cls, value: str) -> str:
        if not GO_VERSION.match(value):
            raise ValueError(f"{value!r} is not a Go version like 1.23 or 1.23.4")
        return value

    @field_validator("version")
    @classmethod
    def _semver(cls, value: str) -> str:
        if value.startswith("v"):
            raise ValueError(f"{value!r} must be SemVer 2.0.0 without the 'v' prefix")
        if not SEMVER.match(value):
            raise ValueError(f"{value!r} is not a SemVer 2.0.0 version (MAJOR.MINOR.PATCH[-pre][+build])")
        return value

    @field_validator("platforms")
    @classmethod
    def _platforms(cls, value: list[str]) -> list[str]:
        unknown = [p for p in value if p not in SUPPORTED_PLATFORMS]
        if unknown:
            raise ValueError(
                f"unsupported platform {unknown[0]!r} (supported: {', '.join(SUPPORTED_PLATFORMS)})"
            )
        if len(set(value)) != len(value):
            raise ValueError("platforms are listed twice")
        return value

    @model_validator(mode="after")
    def _probe_thresholds(self) -> Service:
        if self.probe is None:
            return self
        kinds = {slo.sli.type for slo in self.slos}
        if self.probe.latency_threshold_seconds is None and "latency" not in kinds:
            raise ProbeThresholdError("latencyThresholdSeconds", "latency SLO")
        if self.probe.success_ratio is None and "ratio" not in kinds:
            raise ProbeThresholdError("successRatio", "ratio SLO")
        return self

    @model_validator(mode="after")
    def _unique_children(self) -> Service:
        _refuse_duplicates([s.name for s in self.slos], "slos")
        _refuse_duplicates([c.name for c in self.chaos], "chaos")
        return self


class StackConfig(Model):
    environment: Literal["dev", "staging", "prod"]
    github: GitHubConfig
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    kubernetes: KubernetesConfig
    signing: SigningConfig = Field(default_factory=SigningConfig)
    prometheus: PrometheusConfig = Field(default_factory=PrometheusConfig)
    services: list[Service] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_services(self) -> StackConfig:
        _refuse_duplicates([s.name for s in self.services], "services")
        _refuse_duplicates([s.repository for s in self.services], "services", key="repository")
        return self


class DuplicateNameError(ValueError):
    def __init__(self, field: str, index: int, key: str, value: str) -> None:
        super().__init__(f"duplicate {key} {value!r}")
        self.field, self.index, self.key = field, index, key


def _refuse_duplicates(names: list[str], field: str, key: str = "name") -> None:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            raise DuplicateNameError(field, index, key, name)
        seen.add(name)


class ProbeThresholdError(ValueError):
    def __init__(self, key: str, source: str) -> None:
        super().__init__(f"required: the service has no {source} to take it from")
        self.key = key


class ConfigError(Exception):
    """A stack config that cannot be used; `problems` holds one line each, ready to print."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def key_path(loc: tuple[int | str, ...]) -> str:
    path = f"{PROJECT}:"
    for index, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += part if index == 0 else f".{part}"
    return path


def _alias_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """pydantic reports aliases already; this keeps the loc but drops pydantic's internal markers."""
    return tuple(p for p in loc if p not in ("function-after", "function-before", "[key]"))


# The only keys whose value may be a secret (`pulumi config set --secret`): everything else is written
# in clear to resources, artifacts and the state, so a secret there would be a secret leaked.
SECRET_KEY_PATHS: tuple[tuple[str, ...], ...] = (("registry", "password"),)


def secret_path_problems(secret_paths: Iterable[tuple[str | int, ...]], source: str) -> list[str]:
    """One line per secret value at a key that does not take secrets (a top-level path covers its keys)."""
    allowed = ", ".join(key_path(p) for p in SECRET_KEY_PATHS)
    problems = []
    for path in secret_paths:
        covered = path in SECRET_KEY_PATHS or (
            len(path) == 1 and any(p[0] == path[0] for p in SECRET_KEY_PATHS)
        )
        if not covered:
            problems.append(
                f"{source}: {key_path(path)}: a secret value is accepted only for {allowed}; "
                "this key is written in clear to resources and state"
            )
    return problems


def parse_stack_config(
    raw: Mapping[str, Any], source: str, secret_paths: Iterable[tuple[str | int, ...]] = ()
) -> StackConfig:
    """Parse `roadbike:*` values (keys without the namespace) into a StackConfig or raise ConfigError.

    `secret_paths`: the key paths (without the namespace) whose values were given as secrets.
    """
    problems: list[str] = secret_path_problems(secret_paths, source)
    known = set()
    for name, field in StackConfig.model_fields.items():
        known.add(field.alias or name)
    for key in sorted(raw):
        if key not in known:
            problems.append(f"{source}: {key_path((key,))}: unknown key (known: {', '.join(sorted(known))})")
    if problems:
        raise ConfigError(problems)
    try:
        return StackConfig.model_validate(dict(raw), context={"environment": raw.get("environment")})
    except ValidationError as exc:
        raise ConfigError([_problem_line(source, err) for err in exc.errors()]) from None


def _problem_line(source: str, err: Any) -> str:
    loc = _alias_loc(tuple(err["loc"]))
    ctx_error = (err.get("ctx") or {}).get("error")
    if isinstance(ctx_error, ProbeThresholdError):
        loc = (*loc, "probe", ctx_error.key)
    if isinstance(ctx_error, DuplicateNameError):
        loc = (*loc, ctx_error.field, ctx_error.index, ctx_error.key)
    message = _message(err)
    return f"{source}: {key_path(loc)}: {message}"


def _message(err: Any) -> str:
    kind = err["type"]
    secret = any(tuple(p for p in err["loc"] if isinstance(p, str))[-len(k) :] == k for k in SECRET_KEY_PATHS)
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    message = str(err["msg"])
    message = message.removeprefix("Value error, ")
    if secret:
        pass  # never echo what was given for a secret key
    elif kind.endswith("_type") or kind.endswith("_parsing"):
        message += f" (got {type(err.get('input')).__name__} {err.get('input')!r})"
    elif kind in {"greater_than", "less_than", "greater_than_equal", "less_than_equal", "literal_error"}:
        message += f" (got {err.get('input')!r})"
    return message


def decode_config_value(value: Any) -> Any:
    """Pulumi hands structured config to the program as JSON text; plain strings stay strings."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        import json

        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def load_pulumi_config() -> StackConfig:
    """Read every `roadbike:*` key the engine gave the program and parse it."""
    import pulumi
    from pulumi.runtime.config import CONFIG, is_config_secret

    prefix = f"{PROJECT}:"
    raw = {
        k.removeprefix(prefix): decode_config_value(v)
        for k, v in CONFIG.get().items()
        if k.startswith(prefix)
    }
    source = f"stacks/Pulumi.{pulumi.get_stack()}.yaml"
    secret_paths = [(key,) for key in raw if is_config_secret(prefix + key)]
    return parse_stack_config(raw, source, secret_paths)
