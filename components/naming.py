"""One source of truth for the names, labels and selectors of a service.

The Deployment, ServiceMonitor, SLO rules, chaos selectors and workflow job names all derive from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.config import Service, StackConfig

PART_OF = "roadbike"
MANAGED_BY = "roadbike"


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


REGISTRY_SERVICE = "registry"
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
