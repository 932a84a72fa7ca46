"""The typed stack config: the one place that reads `roadbike:*` values.

Everything else receives a `StackConfig`. Unknown keys, wrong types and unsafe-by-construction values are
refused here with one line per problem that names the stack file and the key path.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit

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

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", re.ASCII)
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$"
HTTP_URL = r"https?://[^\s/]+(/\S*)?"  # whole-string (fullmatch); config URLs: check_url
# https://semver.org/#is-there-a-suggested-regular-expression-regex-to-check-a-semver-string
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?\Z",
    re.ASCII,
)
# time.ParseDuration: a sequence of decimal numbers with a unit, e.g. "300ms", "1.5h", "2h45m".
GO_DURATION = re.compile(r"(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|ms|s|m|h))+")
GO_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)")
GO_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
# What Chaos Mesh's NetworkChaos schema accepts for delay latency and jitter.
NETEM_TIME = re.compile(r"[0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h)")
GITHUB_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9_])?")
GO_VERSION = re.compile(r"1\.(?:0|[1-9][0-9]{0,2})(?:\.(?:0|[1-9][0-9]{0,2}))?")
HOSTNAME = re.compile(
    r"(?=[^:]{1,253}(:|\Z))[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*(:[0-9]{1,5})?"
)
CRON_FIELD = re.compile(r"[0-9A-Za-z*?/,\-LW#]{1,64}")
# A PromQL instant-vector selector: a metric name and optional label matchers, e.g. `x_total{code=~"5.."}`.
_MATCHER = r"""\s*[A-Za-z_][A-Za-z0-9_]*\s*(?:=~|!~|!=|=)\s*(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*"""
PROMQL_SELECTOR = re.compile(rf"[A-Za-z_:][A-Za-z0-9_:]*(?:\{{(?:{_MATCHER}(?:,{_MATCHER})*,?)?\s*\}})?")
# A Kubernetes port name (IANA_SVC_NAME): at most 15 characters, a letter, no leading, trailing or double '-'.
PORT_NAME = re.compile(r"(?=.{1,15}\Z)(?=.*[a-z])(?!.*--)[a-z0-9]([a-z0-9-]*[a-z0-9])?")
SUPPORTED_PLATFORMS = ("linux/amd64", "linux/arm64")
# The managed registry's name (components.naming.REGISTRY_SERVICE): a service's objects would collide with it.
REGISTRY_NAME = "registry"
RESERVED_SERVICE_NAMES = frozenset({REGISTRY_NAME})


# --- text that reaches generated files ------------------------------------------------------------

# The registry username lands in the htpasswd file (`user:hash` lines), a docker config and an Actions
# variable: a safe set, no ':' and no space. Harbor's robot accounts (`robot$name`) fit.
USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@$+-]{0,127}")
# What a URL of the config may hold after the host: RFC 3986 unreserved, sub-delims but ' and %-escapes.
URL_REST = re.compile(r"(?:[A-Za-z0-9._~!$&()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*")
# Query parameters that carry credentials: refused in any URL of the config (it is written in clear).
CREDENTIAL_PARAMS = frozenset(
    {
        "token",
        "access_token",
        "api_key",
        "apikey",
        "key",
        "password",
        "passwd",
        "pwd",
        "secret",
        "sig",
        "signature",
        "auth",
        "x-amz-signature",
        "x-amz-credential",
        "client_secret",
    }
)


def control_characters(value: str) -> list[str]:
    """The control, format and separator characters in a text (U+000A, U+202E, ...), as U+ codes."""
    found = []
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            found.append(f"U+{ord(char):04X}")
    return sorted(set(found))


def check_url(
    value: str,
    *,
    https_only: bool = False,
    reachable_from_internet: bool = False,
) -> str:
    """An http(s) URL of the config: host and optional port, no credentials, no character that means
    something to YAML, shell, PromQL or Go templates ({ } ' " space backslash)."""
    if not isinstance(value, str) or len(value) > 2048:
        raise ValueError("must be an http(s) URL of at most 2048 characters")
    parts = urlsplit(value)
    schemes = ("https",) if https_only else ("http", "https")
    if parts.scheme not in schemes or not value.startswith(f"{parts.scheme}://"):
        raise ValueError(f"{value!r} must be an {' or '.join(s + '://' for s in schemes)} URL")
    netloc = parts.netloc
    if "@" in netloc:
        raise ValueError(
            "holds credentials (user:password@): URLs of the config are written in clear; "
            "give the credentials to the service another way"
        )
    for name, _value in parse_qsl(parts.query, keep_blank_values=True):
        if name.lower() in CREDENTIAL_PARAMS:
            raise ValueError(
                f"its query parameter {name!r} carries a credential: URLs of the config are written in clear"
            )
    if netloc.startswith("["):
        host, _, port = netloc[1:].partition("]")
        port = port.removeprefix(":") if port.startswith(":") or not port else "x"
    else:
        host, _, port = netloc.partition(":")
    if port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"{value!r}: the port must be a number from 1 to 65535")
    if netloc.startswith("[") and _ip_address(host) is None:
        raise ValueError(f"{value!r}: {host!r} is not an IPv6 address")
    host = host.lower()
    address = _ip_address(host)
    if address is None and not HOSTNAME.fullmatch(host):
        raise ValueError(f"{value!r}: {host!r} is not a host name")
    rest = value[len(parts.scheme) + 3 + len(netloc) :]
    if not URL_REST.fullmatch(rest):
        raise ValueError(
            f"{value!r}: only letters, digits, -._~!$&()*+,;=:@/? and %-escapes may follow the host"
        )
    if reachable_from_internet:
        if host == "localhost" or host.endswith(".localhost"):
            raise ValueError(f"{value!r}: {host} is this machine, which GitHub can never reach")
        if address is not None and (
            address.is_loopback or address.is_link_local or address.is_unspecified or address.is_multicast
        ):
            raise ValueError(
                f"{value!r}: {host} is a loopback, link-local, unspecified or multicast address, "
                "which GitHub can never reach"
            )
    return value


def _ip_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return None


def go_duration_seconds(value: str) -> float:
    """Seconds in a Go duration string already checked against GO_DURATION."""
    return sum(float(num) * GO_UNIT_SECONDS[unit] for num, unit in GO_DURATION_PART.findall(value))


def check_go_duration(value: str) -> str:
    if not isinstance(value, str) or len(value) > 64 or not GO_DURATION.fullmatch(value):
        raise ValueError(f"{value!r} is not a Go duration (e.g. 60s, 1m30s, 100ms)")
    return value


# Bounds on what chaos may do: how long, how often, how hard.
MIN_CHAOS_SECONDS, MAX_CHAOS_SECONDS = 1.0, 3600.0  # an experiment's duration, a prod maxDuration
MAX_NETEM_SECONDS = 10.0  # network delay latency and jitter
MIN_CHAOS_INTERVAL_SECONDS, MAX_CHAOS_INTERVAL_SECONDS = 60.0, 366 * 86400.0  # @every
MAX_GRACE_PERIOD_SECONDS = 3600


def _format_seconds(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def check_duration_between(value: str, low: float, high: float, what: str) -> str:
    seconds = go_duration_seconds(check_go_duration(value))
    if not low <= seconds <= high:
        raise ValueError(
            f"{what} {value} is out of bounds: from {_format_seconds(low)} to {_format_seconds(high)}"
        )
    return value


def check_dns_label(value: str) -> str:
    if len(value) > 63 or not DNS_LABEL.fullmatch(value):
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
        check_duration_between(
            value.removeprefix("@every ").strip(),
            MIN_CHAOS_INTERVAL_SECONDS,
            MAX_CHAOS_INTERVAL_SECONDS,
            "the interval",
        )
        return value
    if value in {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}:
        return value
    fields = value.split()
    if len(fields) not in (5, 6) or not all(CRON_FIELD.fullmatch(f) for f in fields):
        raise ValueError(f"{value!r} is not a cron schedule (5 or 6 fields) nor '@every <duration>'")
    if len(fields) == 6 and not (fields[0].isascii() and fields[0].isdigit() and int(fields[0]) < 60):
        raise ValueError(
            f"{value!r}: the seconds field must be one second (0-59): chaos runs at most once a minute"
        )
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
    # strict: a number is a YAML number (not a string, not a boolean), a flag is true or false.
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, frozen=True, strict=True, allow_inf_nan=False
    )


# GitHub user and App IDs: positive integers (GitHub's are below 2**53), never booleans or text.
GitHubId = Annotated[int, Field(strict=True, gt=0, lt=2**53)]


class GitHubConfig(Model):
    owner: str
    webhook_url: str | None = Field(default=None, alias="webhookUrl")
    prod_reviewers: list[GitHubId] = Field(default_factory=list, alias="prodReviewers", max_length=6)
    # The GitHub App `pulumi up` runs as: it commits the generated files past the default branch ruleset.
    deployer_app_id: GitHubId | None = Field(default=None, alias="deployerAppId")
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
        return value if value is None else check_url(value, https_only=True, reachable_from_internet=True)

    @field_validator("prod_reviewers")
    @classmethod
    def _distinct_reviewers(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("a reviewer is listed twice")
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
    if not GITHUB_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid GitHub name")
    if value.lower().endswith(".git"):
        raise ValueError(f"{value!r}: GitHub drops a .git suffix, so it would name another repository")
    return value


# Registries that the world pulls from: the managed (in-cluster) registry must never claim their names,
# or images pushed "to it" would be pushed, with its credentials, to them.
PUBLIC_REGISTRIES = (
    "docker.io",
    "registry-1.docker.io",
    "index.docker.io",
    "registry.hub.docker.com",
    "ghcr.io",
    "quay.io",
    "gcr.io",
    "mcr.microsoft.com",
    "public.ecr.aws",
    "registry.k8s.io",
    "k8s.gcr.io",
    "nvcr.io",
    "registry.gitlab.com",
    "docker.pkg.github.com",
    "cgr.dev",
    "registry.redhat.io",
)
PUBLIC_REGISTRY_SUFFIXES = (".gcr.io", ".pkg.dev", ".amazonaws.com", ".azurecr.io", ".docker.io")


def is_public_registry(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if ":" in host else host
    return name in PUBLIC_REGISTRIES or name.endswith(PUBLIC_REGISTRY_SUFFIXES)


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
        if value is not None and not HOSTNAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a host name (lower case, optional :port, no scheme)")
        return value

    @field_validator("username")
    @classmethod
    def _username(cls, value: str | None) -> str | None:
        if value is not None and not USERNAME.fullmatch(value):
            raise ValueError(
                "is not a registry username: 1 to 128 of letters, digits and ._@$+- starting with a "
                "letter or digit (no ':', space or control character)"
            )
        return value

    @model_validator(mode="after")
    def _external_needs_host(self) -> RegistryConfig:
        if self.mode == "external" and not self.host:
            raise ValueError("host is required when mode is external")
        if self.mode == "managed" and self.host and is_public_registry(self.host):
            raise ValueError(
                f"host {self.host!r} is a public registry's name; the managed registry runs in the "
                "cluster: leave host out (or give it a name of your own)"
            )
        if self.mode == "external" and self.username is not None and self.password is None:
            raise ValueError(
                "an external registry with a username needs its password, as a secret: "
                f"pulumi config set --secret --path '{PROJECT}:registry.password' \"$REGISTRY_TOKEN\""
            )
        return self


DNS_SUBDOMAIN_NAME = re.compile(DNS_SUBDOMAIN.removeprefix("^").removesuffix("$"))
RBAC_SUBJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,252}")


class Deployer(Model):
    """The identity `pulumi up` runs as; RBAC that the platform grants in its namespace is bound to it."""

    kind: Literal["ServiceAccount", "User", "Group"] = "ServiceAccount"
    name: str = Field(default="roadbike-deployer", min_length=1, max_length=253)
    namespace: str | None = None

    _namespace = field_validator("namespace")(lambda v: v if v is None else check_dns_label(v))

    @model_validator(mode="after")
    def _namespace_only_for_service_accounts(self) -> Deployer:
        if self.kind != "ServiceAccount" and self.namespace is not None:
            raise ValueError(f"a {self.kind} has no namespace; remove namespace")
        if self.kind == "ServiceAccount" and not DNS_SUBDOMAIN_NAME.fullmatch(self.name):
            raise ValueError(f"{self.name!r} is not a ServiceAccount name (a DNS-1123 subdomain)")
        if self.kind != "ServiceAccount" and not RBAC_SUBJECT_NAME.fullmatch(self.name):
            raise ValueError(f"{self.name!r} is not a {self.kind} name (letters, digits and -_.:@)")
        if self.kind != "ServiceAccount" and self.name.startswith("system:"):
            raise ValueError(
                f"{self.kind} {self.name!r} is one of Kubernetes' system identities (system:*): binding "
                "the chaos RBAC to it grants it to every member; name the deployer's own identity"
            )
        return self


# A kubeconfig context name: kubectl allows any text; these cover kind-*, gke_*, EKS ARNs, user@cluster.
KUBECONFIG_CONTEXT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,252}")


def _check_local_path(value: str, what: str) -> str:
    """A path on the machine that runs `pulumi up`: one line, no `..`, not empty or the project itself."""
    if not value.strip() or value != value.strip():
        raise ValueError(f"{value!r} is not a {what}: no leading or trailing blanks")
    parts = value.replace("\\", "/").split("/")
    if ".." in parts:
        raise ValueError(f"{value!r}: a {what} without '..'")
    if value.rstrip("/") in ("", ".", "~"):
        raise ValueError(f"{value!r} is not a {what} of its own")
    return value


class ClusterConfig(Model):
    """The cluster `pulumi up` deploys to: a context of a kubeconfig file (never the current context)."""

    context: str = Field(min_length=1, max_length=253)
    # the kubeconfig file; default: $KUBECONFIG, else ~/.kube/config, as kubectl reads it
    kubeconfig: str | None = Field(default=None, max_length=4096)

    @field_validator("context")
    @classmethod
    def _context(cls, value: str) -> str:
        if not KUBECONFIG_CONTEXT.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a kubeconfig context name (letters, digits and ._:@/+-, no blank)"
            )
        return value

    _kubeconfig = field_validator("kubeconfig")(
        lambda v: v if v is None else _check_local_path(v, "kubeconfig file path")
    )


class GitOpsConfig(Model):
    """GitOps mode: the Kubernetes provider writes the manifests into `directory` (for Argo CD or Flux)
    instead of applying them to a cluster."""

    directory: str = Field(min_length=1, max_length=4096)

    _directory = field_validator("directory")(lambda v: _check_local_path(v, "directory"))


class KubernetesConfig(Model):
    namespace: str
    pod_security: Literal["restricted", "baseline", "privileged"] = Field(
        default="restricted", alias="podSecurity"
    )
    deployer: Deployer = Field(default_factory=Deployer)
    cluster: ClusterConfig | None = None
    gitops: GitOpsConfig | None = None

    _namespace = field_validator("namespace")(lambda v: _check_platform_namespace(v))


# Namespaces the platform never takes: Kubernetes' own and the operators' it relies on.
SYSTEM_NAMESPACES = frozenset(
    {"default", "cert-manager", "chaos-mesh", "cosign-system", "monitoring", "argo-rollouts", "argocd"}
)
SYSTEM_NAMESPACE_PREFIXES = ("kube-", "openshift")


def _check_platform_namespace(value: str) -> str:
    check_dns_label(value)
    if value in SYSTEM_NAMESPACES or value.startswith(SYSTEM_NAMESPACE_PREFIXES):
        raise ValueError(
            f"{value!r} is a system namespace (Kubernetes' own or an operator's); the platform needs a "
            "namespace of its own, e.g. delivery-dev"
        )
    return value


# How a namespace names an environment: one of these as a '-'-separated part of the name.
ENVIRONMENT_WORDS = {
    "dev": frozenset({"dev", "development"}),
    "staging": frozenset({"staging", "stage", "stg"}),
    "prod": frozenset({"prod", "production", "prd", "live"}),
}


def namespace_environment_problem(environment: str, namespace: str) -> str | None:
    """The rule: a namespace names no other environment than the stack's own, and a staging or prod
    stack's namespace names its environment (`delivery-prod`); a dev stack's may name none."""
    words = set(namespace.split("-"))
    named = sorted(env for env, synonyms in ENVIRONMENT_WORDS.items() if words & synonyms)
    others = [env for env in named if env != environment]
    if others:
        return (
            f"namespace {namespace!r} names the {others[0]} environment but roadbike:environment is "
            f"{environment}: a stack plans with its own environment's rules only in its own namespace"
        )
    if environment != "dev" and environment not in named:
        return (
            f"namespace {namespace!r} does not name the {environment} environment: a {environment} stack's "
            f"namespace has '{environment}' as a part of its name, e.g. delivery-{environment}"
        )
    return None


class SigningConfig(Model):
    mode: Literal["keypair", "keyless", "none"] = "keypair"


# A Prometheus duration (model.ParseDuration): units in descending order, e.g. "15d", "1w2d", "720h".
PROMETHEUS_DURATION = re.compile(
    r"(?=.)([0-9]{1,6}y)?([0-9]{1,6}w)?([0-9]{1,6}d)?([0-9]{1,6}h)?([0-9]{1,6}m)?([0-9]{1,6}s)?([0-9]{1,6}ms)?"
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
    r"([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)
LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")


class PrometheusConfig(Model):
    """The stack's Prometheus: the labels it selects rules and monitors by, its URL, the runbooks."""

    rule_selector_labels: dict[str, str] = Field(
        default_factory=lambda: {"release": "kube-prometheus-stack"}, alias="ruleSelectorLabels"
    )
    url: str | None = None
    runbook_base_url: str | None = Field(default=None, alias="runbookBaseUrl")
    # Prometheus' --storage.tsdb.retention.time: an SLO period longer than it cannot be covered.
    retention: str | None = None

    _urls = field_validator("url", "runbook_base_url")(lambda v: v if v is None else check_url(v))

    @field_validator("retention")
    @classmethod
    def _retention(cls, value: str | None) -> str | None:
        if value is not None and (len(value) > 64 or not PROMETHEUS_DURATION.fullmatch(value)):
            raise ValueError(f"{value!r} is not a Prometheus duration like 15d or 720h")
        return value

    @field_validator("rule_selector_labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, label in value.items():
            if not isinstance(label, str) or not LABEL_KEY.fullmatch(key) or not LABEL_VALUE.fullmatch(label):
                raise ValueError(f"{key}: {label!r} is not a Kubernetes label")
        return value


# --- delivery health (the DORA measures) ---------------------------------------------------------

# Releases are counted over this window; the DORA bands (e.g. "once a month") need at least a month.
DELIVERY_WINDOW = "30d"
DELIVERY_DURATION_RANGE = ("1m", "365d")
DELIVERY_INTERVAL_RANGE = ("1s", "5m")


def check_delivery_duration(value: str, low: str, high: str) -> str:
    """A Prometheus duration between `low` and `high`."""
    if not isinstance(value, str) or len(value) > 64 or not PROMETHEUS_DURATION.fullmatch(value):
        raise ValueError(f"{value!r} is not a Prometheus duration like 1h, 7d or 30d")
    seconds = prometheus_duration_seconds(value)
    if not prometheus_duration_seconds(low) <= seconds <= prometheus_duration_seconds(high):
        raise ValueError(f"{value} is out of bounds: from {low} to {high}")
    return value


def check_push_url(value: str) -> str:
    """An https URL without credentials; http only to this machine (loopback, for tests)."""
    check_url(value)
    host = urlsplit(value).hostname or ""
    address = _ip_address(host)
    loopback = host == "localhost" or (address is not None and address.is_loopback)
    if value.startswith("http://") and not loopback:
        raise ValueError(
            f"{value!r} must be an https:// URL (http:// only to a loopback address): the release "
            "sends its credentials and facts to it"
        )
    return value


class DurationBand(Model):
    """Yellow and red levels of a measure given as a duration (worse when longer)."""

    yellow: str
    red: str

    @field_validator("yellow", "red")
    @classmethod
    def _duration(cls, value: str) -> str:
        return check_delivery_duration(value, *DELIVERY_DURATION_RANGE)

    @model_validator(mode="after")
    def _ordered(self) -> DurationBand:
        if prometheus_duration_seconds(self.yellow) >= prometheus_duration_seconds(self.red):
            raise ValueError(f"yellow ({self.yellow}) must be shorter than red ({self.red})")
        return self


class PercentBand(Model):
    """Yellow and red levels of a measure given in percent (worse when higher)."""

    yellow: float = Field(gt=0, lt=100)
    red: float = Field(gt=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> PercentBand:
        if self.yellow >= self.red:
            raise ValueError(f"yellow ({self.yellow:g}) must be below red ({self.red:g})")
        return self


# Defaults: yellow when a measure leaves the DORA report's "high" band, red when it leaves "medium"
# (Accelerate State of DevOps Report 2023, software delivery performance levels).
class DeliveryThresholds(Model):
    # fewer than one successful deployment per `yellow` (per `red`) on average over the window
    deployment_frequency: DurationBand = Field(
        default_factory=lambda: DurationBand(yellow="7d", red="30d"), alias="deploymentFrequency"
    )
    # the median lead time for changes is longer than
    lead_time: DurationBand = Field(
        default_factory=lambda: DurationBand(yellow="7d", red="30d"), alias="leadTime"
    )
    change_failure_rate: PercentBand = Field(
        default_factory=lambda: PercentBand(yellow=10, red=15), alias="changeFailureRate"
    )
    # the median time to restore is longer than
    time_to_restore: DurationBand = Field(
        default_factory=lambda: DurationBand(yellow="1d", red="7d"), alias="timeToRestore"
    )

    @model_validator(mode="after")
    def _frequency_within_window(self) -> DeliveryThresholds:
        window = prometheus_duration_seconds(DELIVERY_WINDOW)
        if prometheus_duration_seconds(self.deployment_frequency.red) > window:
            raise ScopeError(
                ("deploymentFrequency", "red"),
                f"{self.deployment_frequency.red} is longer than the {DELIVERY_WINDOW} window "
                "deployments are counted over",
            )
        return self


class Pushgateway(Model):
    url: str
    # basic auth: the user name is an Actions variable, the password an Actions secret of the environment
    username: str | None = None
    password: SecretStr | None = None

    _url = field_validator("url")(lambda v: check_push_url(v))

    @field_validator("username")
    @classmethod
    def _username(cls, value: str | None) -> str | None:
        if value is not None and not USERNAME.fullmatch(value):
            raise ValueError(
                "is not a user name: 1 to 128 of letters, digits and ._@$+- starting with a letter or "
                "digit (no ':', space or control character)"
            )
        return value

    @model_validator(mode="after")
    def _both_or_neither(self) -> Pushgateway:
        if (self.username is None) != (self.password is None):
            raise ValueError(
                "basic auth needs both username and password (the password as a secret: pulumi config "
                f"set --secret --path '{PROJECT}:delivery.pushgateway.password' \"$PUSHGATEWAY_PASSWORD\")"
            )
        return self


class Loki(Model):
    url: str

    _url = field_validator("url")(lambda v: check_push_url(v))


class DeliveryConfig(Model):
    """Delivery health: releases report to a Pushgateway; the DORA measures, thresholds, a dashboard."""

    pushgateway: Pushgateway
    loki: Loki | None = None
    # a release followed within this by a page alert or a failed SLI gate of its service is a failed change
    failure_window: str = Field(default="1h", alias="failureWindow")
    # how often the delivery rules are evaluated (the incident tracking steps by it)
    evaluation_interval: str = Field(default="1m", alias="evaluationInterval")
    thresholds: DeliveryThresholds = Field(default_factory=DeliveryThresholds)

    @field_validator("failure_window")
    @classmethod
    def _failure_window(cls, value: str) -> str:
        return check_delivery_duration(value, "1m", "7d")

    @field_validator("evaluation_interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        return check_delivery_duration(value, *DELIVERY_INTERVAL_RANGE)


# The labels roadbike sets on every SLI selector to scope it to its service and stack: a selector that set
# them itself could read another service's or another namespace's traffic.
SCOPE_LABELS = ("job", "namespace")
MAX_SELECTOR_LENGTH = 1024
MAX_REGEX_LENGTH = 256
MAX_REPETITION = 100
MAX_QUANTIFIERS = 2


def check_selector_matchers(selector: str) -> None:
    from components.slo.selectors import parse_selector

    if len(selector) > MAX_SELECTOR_LENGTH:
        raise ValueError(f"a selector is at most {MAX_SELECTOR_LENGTH} characters")
    for matcher in parse_selector(selector).matchers:
        if matcher.name in SCOPE_LABELS:
            raise ValueError(
                f"{selector!r} sets {matcher.name}, one of the labels roadbike scopes every SLI selector "
                f"with ({', '.join(SCOPE_LABELS)}: this service, this stack's namespace): remove it"
            )
        if matcher.op in ("=~", "!~"):
            problem = regex_problem(matcher.value)
            if problem:
                raise ValueError(f"{selector!r}: the regex of {matcher.name} {problem}")


_REPETITION = re.compile(r"\{([0-9]*)(?:,([0-9]*))?\}")


def regex_problem(pattern: str) -> str | None:
    """Why a label regex is refused: too long, a repetition over MAX_REPETITION, too many quantifiers, a
    repeated group (the shape of every exponential backtracking: (a+)+, (a|a)*), or unbalanced."""
    if len(pattern) > MAX_REGEX_LENGTH:
        return f"is longer than {MAX_REGEX_LENGTH} characters"
    for low, high in _REPETITION.findall(pattern):
        for count in (low, high):
            if count and (len(count) > 3 or int(count) > MAX_REPETITION):
                return f"repeats more than {MAX_REPETITION} times ({{{low}{',' + high if high else ''}}})"
    # A scan for groups: does a quantified group contain a quantifier?
    stack: list[bool] = []
    quantified_inside = False
    quantifiers = 0
    index = 0
    in_class = False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern[index + 1 : index + 2] == "]":
                index += 1
        elif char == "(":
            stack.append(False)
            if pattern[index + 1 : index + 2] == "?":  # (?: (?i) (?P<name>: not a quantifier
                index += 2
                continue
        elif char == ")":
            if not stack:
                return "has an unbalanced ')'"
            quantified_inside = stack.pop()
            following = pattern[index + 1 : index + 2]
            if following and following in "*+{":
                return (
                    "repeats a group ((...)*, (...)+, (...){n}): label regexes may repeat single characters "
                    "and classes only, which no engine can make backtrack exponentially"
                )
            if stack:
                stack[-1] = stack[-1] or quantified_inside
        elif char in "*+?{":
            fixed = char == "{" and re.match(r"\{([0-9]+)\}", pattern[index:]) is not None
            quantifiers += 0 if fixed else 1
            if quantifiers > MAX_QUANTIFIERS:
                return (
                    f"has more than {MAX_QUANTIFIERS} quantifiers that vary (*, +, ?, {{n,m}}): each one "
                    "multiplies the work of matching"
                )
            if stack:
                stack[-1] = True
        index += 1
    if stack:
        return "has an unclosed '('"
    if in_class:
        return "has an unclosed '['"
    return None


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
        if not PROMQL_SELECTOR.fullmatch(value.strip()):
            raise ValueError(f'{value!r} is not a PromQL selector like http_requests_total{{code=~"5.."}}')
        if info.field_name == "histogram" and value.split("{")[0].endswith(("_bucket", "_count", "_sum")):
            raise ValueError(f"{value!r}: name the histogram itself (without _bucket, _count or _sum)")
        check_selector_matchers(value.strip())
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
    grace_period: int | None = Field(default=None, alias="gracePeriod", ge=0, le=MAX_GRACE_PERIOD_SECONDS)

    _name = field_validator("name")(lambda v: check_dns_label(v))
    _schedule = field_validator("schedule")(lambda v: check_chaos_schedule(v))
    _schedule_environment = field_validator("schedule")(check_chaos_environment)
    _durations = field_validator("duration", "latency", "jitter")(
        lambda v: v if v is None else check_go_duration(v)
    )
    _duration_bounds = field_validator("duration")(
        lambda v: check_duration_between(v, MIN_CHAOS_SECONDS, MAX_CHAOS_SECONDS, "duration")
    )

    @field_validator("latency", "jitter")
    @classmethod
    def _netem_time(cls, value: str | None) -> str | None:
        if value is not None and not NETEM_TIME.fullmatch(value):
            raise ValueError(f"{value!r} must be one number and one unit (ns, us, ms, s, m, h), e.g. 100ms")
        return value if value is None else check_duration_between(value, 0.0, MAX_NETEM_SECONDS, "the delay")

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

    url: str
    requests: int = Field(default=50, ge=1, le=10_000)
    concurrency: int = Field(default=5, ge=1, le=100)
    latency_threshold_seconds: float | None = Field(
        default=None, alias="latencyThresholdSeconds", gt=0, le=60
    )

    _url = field_validator("url")(lambda v: check_url(v))
    success_ratio: float | None = Field(default=None, alias="successRatio", gt=0, le=1)
    error_ratio: float | None = Field(default=None, alias="errorRatio", ge=0, lt=1)


class ChaosOptIn(Model):
    """A prod service's explicit consent to chaos: a change approval and a cap on each experiment."""

    approval: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/#-]{0,62}$")
    max_duration: str = Field(alias="maxDuration")

    _max_duration = field_validator("max_duration")(
        lambda v: check_duration_between(v, MIN_CHAOS_SECONDS, MAX_CHAOS_SECONDS, "maxDuration")
    )


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
        if not PORT_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a Service port name (IANA_SVC_NAME, e.g. http or metrics)")
        return value

    _name = field_validator("name")(lambda v: _check_service_name(v))
    _repository = field_validator("repository")(lambda v: _check_github_name(v))

    @field_validator("go_version")
    @classmethod
    def _go_version(cls, value: str) -> str:
        if not GO_VERSION.fullmatch(value):
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
    delivery: DeliveryConfig | None = None
    services: list[Service] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_services(self) -> StackConfig:
        _refuse_duplicates([s.name for s in self.services], "services")
        # GitHub compares repository names regardless of case: Orders-API and orders-api are one repository
        _refuse_duplicates([s.repository.lower() for s in self.services], "services", key="repository")
        return self

    @model_validator(mode="after")
    def _target(self) -> StackConfig:
        kubernetes = self.kubernetes
        if kubernetes.cluster is None and kubernetes.gitops is None:
            raise ScopeError(
                ("kubernetes", "cluster"),
                "required: the cluster this stack deploys to, as a kubeconfig context "
                f"(cluster: {{context: acme-{self.environment}}}, optionally cluster.kubeconfig: a file), "
                "or gitops.directory to write the manifests instead; the current context is never used",
            )
        if kubernetes.cluster is not None and kubernetes.gitops is not None:
            raise ScopeError(
                ("kubernetes", "gitops"),
                "gitops writes the manifests instead of applying them to a cluster: keep either cluster "
                "or gitops",
            )
        return self

    @model_validator(mode="after")
    def _scope(self) -> StackConfig:
        problem = namespace_environment_problem(self.environment, self.kubernetes.namespace)
        if problem:
            raise ScopeError(("kubernetes", "namespace"), problem)
        deployer = self.kubernetes.deployer
        if deployer.kind == "ServiceAccount" and deployer.namespace not in (None, self.kubernetes.namespace):
            raise ScopeError(
                ("kubernetes", "deployer", "namespace"),
                f"the deployer ServiceAccount is in {deployer.namespace!r}, outside the stack's namespace "
                f"{self.kubernetes.namespace!r}: the chaos RBAC binds only ServiceAccounts of the stack's "
                "own namespace",
            )
        return self


class ScopeError(ValueError):
    def __init__(self, loc: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


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
SECRET_KEY_PATHS: tuple[tuple[str, ...], ...] = (
    ("registry", "password"),
    ("delivery", "pushgateway", "password"),
)


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
    secret_paths = list(secret_paths)
    problems: list[str] = secret_path_problems(secret_paths, source)
    for path, codes in _control_character_paths(raw):
        shown = "" if _is_secret_path(path) else f" ({', '.join(codes[:3])})"
        problems.append(
            f"{source}: {key_path(path)}: contains a control or invisible character{shown}; "
            "names, labels, hosts and URLs are one line of visible text"
        )
    for secret_key in SECRET_KEY_PATHS:
        if _value_at(raw, secret_key) is not None and not any(
            p == secret_key[: len(p)] for p in secret_paths
        ):
            problems.append(
                f"{source}: {key_path(secret_key)}: must be a secret, not plain text in the stack file: "
                f"pulumi config set --secret --path '{key_path(secret_key)}' (rotate the password, it "
                "was committed in clear)"
            )
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


def _value_at(raw: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = raw
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _control_character_paths(
    value: Any, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], list[str]]]:
    if isinstance(value, str):
        codes = control_characters(value)
        if codes:
            yield path, codes
    elif isinstance(value, Mapping):
        for key, item in value.items():
            key_codes = control_characters(str(key))
            if key_codes:
                yield (*path, repr(str(key))[1:-1]), key_codes
            else:
                yield from _control_character_paths(item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _control_character_paths(item, (*path, index))


def _is_secret_path(loc: Iterable[Any]) -> bool:
    """A location at, inside or above a key that takes a secret: nothing found there is ever printed."""
    names = tuple(p for p in loc if isinstance(p, str))
    for secret in SECRET_KEY_PATHS:
        if names[: len(secret)] == secret or secret[: len(names)] == names:
            return True
        if names[-len(secret) :] == secret or any(n in secret[-1:] for n in names):
            return True
    return False


def _problem_line(source: str, err: Any) -> str:
    loc = _alias_loc(tuple(err["loc"]))
    ctx_error = (err.get("ctx") or {}).get("error")
    if isinstance(ctx_error, ProbeThresholdError):
        loc = (*loc, "probe", ctx_error.key)
    if isinstance(ctx_error, DuplicateNameError):
        loc = (*loc, ctx_error.field, ctx_error.index, ctx_error.key)
    if isinstance(ctx_error, ScopeError):
        loc = (*loc, *ctx_error.loc)
    message = _message(err)
    return f"{source}: {key_path(loc)}: {message}"


def _message(err: Any) -> str:
    kind = err["type"]
    secret = _is_secret_path(err["loc"]) or _holds_secret_key(err.get("input"))
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    message = str(err["msg"])
    message = message.removeprefix("Value error, ")
    if secret:
        pass  # never echo what was given for a secret key
    elif kind.endswith("_type") or kind.endswith("_parsing"):
        message += f" (got {type(err.get('input')).__name__}{_shown_input(err.get('input'))})"
    elif kind in {"greater_than", "less_than", "greater_than_equal", "less_than_equal", "literal_error"}:
        message += f" (got{_shown_input(err.get('input'))})"
    return message


def _holds_secret_key(value: Any, depth: int = 0) -> bool:
    """A mapping (at any depth) with a key that takes a secret: its content is never echoed."""
    if depth > 40:
        return True
    secret_names = {path[-1] for path in SECRET_KEY_PATHS}
    if isinstance(value, Mapping):
        return any(k in secret_names or _holds_secret_key(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_secret_key(v, depth + 1) for v in value)
    return False


def _shown_input(value: Any) -> str:
    """A scalar as given, cut to a line; a mapping or list by its type only (it may hold anything)."""
    if isinstance(value, (Mapping, list)):
        return ""
    text = repr(value)
    return " " + (text if len(text) <= 80 else text[:77] + "...")


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
