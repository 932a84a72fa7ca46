"""One source of truth for the names, labels and selectors of a service.

The Deployment, ServiceMonitor, SLO rules, chaos selectors and workflow job names all derive from here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from components.config import REGISTRY_NAME, Service, StackConfig

PART_OF = "roadbike"
MANAGED_BY = "roadbike"
# Chaos Mesh appends 6 random characters to a Schedule's name for each experiment it creates.
CHAOS_SCHEDULE_NAME_LIMIT = 57


def bounded_name(name: str, limit: int) -> str:
    """`name` when it fits in `limit` characters, else a prefix of it and a short hash of the whole."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - len(digest) - 1].rstrip('-')}-{digest}"


@dataclass(frozen=True)
class ServiceNames:
    service: str
    repository: str
    namespace: str
    environment: str

    @property
    def selector(self) -> dict[str, str]:
        """The labels that select the service's pods (what chaos and monitors match)."""
        return {"app": self.service}

    @property
    def labels(self) -> dict[str, str]:
        return {
            **self.selector,
            "app.kubernetes.io/name": self.service,
            "app.kubernetes.io/part-of": PART_OF,
            "app.kubernetes.io/managed-by": MANAGED_BY,
            "roadbike.dev/environment": self.environment,
        }

    def resource(self, suffix: str) -> str:
        """A Pulumi resource or object name for one of the service's parts, e.g. `go-http-server-slo`."""
        return f"{self.service}-{suffix}"

    @property
    def job_label(self) -> str:
        """The Service label whose value becomes the `job` of the scraped series (the ServiceMonitor's jobLabel)."""
        return "app"

    @property
    def series_matchers(self) -> dict[str, str]:
        """The label matchers that pick the service's own series in Prometheus (what SLO rules select)."""
        return {"job": self.selector[self.job_label], "namespace": self.namespace}

    def chaos_schedule(self, experiment: str) -> str:
        """The Chaos Mesh Schedule of one experiment, e.g. `go-http-server-chaos-network-delay`."""
        return bounded_name(self.resource(f"chaos-{experiment}"), CHAOS_SCHEDULE_NAME_LIMIT)


def service_names(config: StackConfig, service: Service) -> ServiceNames:
    return ServiceNames(
        service=service.name,
        repository=service.repository,
        namespace=config.kubernetes.namespace,
        environment=config.environment,
    )


def platform_labels(config: StackConfig) -> dict[str, str]:
    return {
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "roadbike.dev/environment": config.environment,
    }


REGISTRY_SERVICE = REGISTRY_NAME
REGISTRY_PORT = 5000


def registry_host(config: StackConfig) -> str:
    """Where images are pushed and pulled: the configured host, else the managed registry's Service."""
    return (
        config.registry.host
        or f"{REGISTRY_SERVICE}.{config.kubernetes.namespace}.svc.cluster.local:{REGISTRY_PORT}"
    )


def image_repository(config: StackConfig, service: Service) -> str:
    """The one image repository of a service, e.g. `registry.dev.acme.internal/acme/go-http-server`."""
    return f"{registry_host(config)}/{config.github.owner.lower()}/{service.name}"


def release_environment(config: StackConfig) -> str:
    """The GitHub environment the release jobs run in: the stack tier; its secrets are release-only."""
    return config.environment


# The dockerconfigjson Secret in the stack's namespace that pulls from the stack's registry.
REGISTRY_PULL_SECRET = "registry-pull"
# The tag of a service's registry build cache (a cache, never deployed).
IMAGE_CACHE_TAG = "buildcache"


def registry_url(config: StackConfig) -> str:
    return f"{config.registry.scheme}://{registry_host(config)}"


def image_cache_ref(config: StackConfig, service: Service) -> str:
    return f"{image_repository(config, service)}:{IMAGE_CACHE_TAG}"


def image_policy_name(config: StackConfig, subject: str) -> str:
    """A cluster-scoped admission policy's name, unique per stack namespace, e.g. `delivery-dev-orders-api`."""
    return bounded_name(f"{config.kubernetes.namespace}-{subject}", 253)


def runbook_url(config: StackConfig, service: Service, page: str, document: str) -> str:
    """`<runbookBaseUrl>/<service>/<page>`, else `docs/runbooks/<document>.md` in the service's repository."""
    base = config.prometheus.runbook_base_url
    if base:
        return f"{base.rstrip('/')}/{service.name}/{page}"
    repository = f"https://github.com/{config.github.owner}/{service.repository}"
    return f"{repository}/blob/main/docs/runbooks/{document}.md"
