"""DeliveryPlatform (one per stack) and DeliveryChain (one per service): the ComponentResource tree."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_github as github
import pulumi_kubernetes as k8s

from components.chaos.component import ChaosSchedules
from components.config import Service, StackConfig
from components.delivery.component import DeliveryHealth
from components.github.component import GitHubPipeline, RegistryCredentials
from components.github.repository import repository_args
from components.images.component import MultiArchImage
from components.kubernetes.cluster import provider_args
from components.kubernetes.namespace import namespace_manifest
from components.naming import ServiceNames, service_names
from components.registry.component import OciRegistry
from components.signing.admission import namespace_labels, signing_enabled
from components.signing.component import CosignKeys, SignedImagesOnly
from components.signing.identity import keyless_identity
from components.slo.component import SloAlerts, SloRouting
from components.slo.probe import probe_outputs


class DeliveryChain(pulumi.ComponentResource):
    """Everything one Go service's delivery chain needs; later domains add their components as children."""

    def __init__(
        self,
        name: str,
        config: StackConfig,
        service: Service,
        namespace: k8s.core.v1.Namespace,
        opts: pulumi.ResourceOptions | None = None,
        registry: OciRegistry | None = None,
    ) -> None:
        super().__init__("roadbike:chain:DeliveryChain", name, None, opts)
        self.names: ServiceNames = service_names(config, service)
        child = pulumi.ResourceOptions(parent=self)

        # Only the owning stack creates the repository; the others name it (`outputs.repository`).
        self.repository: github.Repository | None = None
        self.github: GitHubPipeline | None = None
        if config.github.enabled and config.github.owns_repositories:
            self.repository = github.Repository(
                self.names.resource("repository"), opts=child, **repository_args(config, service)
            )
        if config.github.enabled:
            self.github = GitHubPipeline(
                self.names.resource("github"),
                config,
                service,
                self.repository,
                registry_credentials=registry_credentials(registry),
                opts=pulumi.ResourceOptions(parent=self),
            )
        release_environment = [self.github.environment] if self.github else []
        self.supply_chain: ServiceSupplyChain = service_supply_chain(
            self, config, service, registry, release_environment
        )
        self.chaos: ChaosSchedules | None = None
        if service.chaos:
            self.chaos = ChaosSchedules(
                self.names.resource("chaos"),
                config,
                service,
                namespace,
                pulumi.ResourceOptions(parent=self, depends_on=[namespace]),
            )
        self.slo = SloAlerts(
            self.names.resource("slo"), config, service, namespace, pulumi.ResourceOptions(parent=self)
        )

        self.outputs: dict[str, Any] = {
            "repository": f"{config.github.owner}/{service.repository}",
            "namespace": config.kubernetes.namespace,
            "version": service.version,
            "platforms": list(service.platforms),
            **self.supply_chain.outputs,
            "slo": self.slo.outputs,
        }
        probe = probe_outputs(service)
        if probe is not None:
            self.outputs["probe"] = probe
        self.register_outputs(self.outputs)


class DeliveryPlatform(pulumi.ComponentResource):
    """The stack's delivery platform: the namespace and one DeliveryChain per service."""

    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("roadbike:platform:DeliveryPlatform", name, None, opts)
        # Every Kubernetes object goes to the stack's own cluster (or GitOps directory), never to the
        # current kubeconfig context: the children below inherit this provider.
        self.kubernetes_provider = k8s.Provider(
            "kubernetes", **provider_args(config), opts=pulumi.ResourceOptions(parent=self)
        )
        providers: list[pulumi.ProviderResource] = [self.kubernetes_provider]
        # Every pulumi-github resource manages the configured owner's repositories, not the token's account.
        self.github_provider: github.Provider | None = None
        if config.github.enabled:
            self.github_provider = github.Provider(
                "github", owner=config.github.owner, opts=pulumi.ResourceOptions(parent=self)
            )
            providers.append(self.github_provider)
        child = pulumi.ResourceOptions(parent=self, providers=providers)
        manifest = namespace_manifest(config)
        metadata = manifest["metadata"]
        self.namespace = k8s.core.v1.Namespace(
            config.kubernetes.namespace,
            metadata={**metadata, "labels": {**metadata["labels"], **namespace_labels(config)}},
            opts=pulumi.ResourceOptions(parent=self, provider=self.kubernetes_provider),
        )
        self.registry = OciRegistry("registry", config, self.namespace, child)
        self.chains = {
            service.name: DeliveryChain(
                service.name, config, service, self.namespace, child, registry=self.registry
            )
            for service in config.services
        }
        self.slo_routing = SloRouting("slo", config, self.namespace, child)
        self.delivery: DeliveryHealth | None = None
        if config.delivery is not None:
            self.delivery = DeliveryHealth("delivery", config, self.namespace, child)
        self.outputs: dict[str, Any] = {
            "environment": config.environment,
            "namespace": config.kubernetes.namespace,
            "registry": self.registry.outputs,
            "services": {name: chain.outputs for name, chain in self.chains.items()},
        }
        if config.prometheus.url:
            self.outputs["prometheus"] = {"url": config.prometheus.url}
        if self.delivery is not None:
            self.outputs["delivery"] = self.delivery.outputs
        self.register_outputs(self.outputs)


def registry_credentials(registry: OciRegistry | None) -> RegistryCredentials | None:
    """What the release jobs log in with, when the registry has credentials."""
    if registry is None or registry.username is None or registry.password is None:
        return None
    return RegistryCredentials(username=registry.username, password=registry.password)


@dataclass
class ServiceSupplyChain:
    image: MultiArchImage
    keys: CosignKeys | None = None
    admission: SignedImagesOnly | None = None
    outputs: dict[str, Any] = field(default_factory=dict)


def service_supply_chain(
    parent: pulumi.Resource,
    config: StackConfig,
    service: Service,
    registry: OciRegistry | None,
    release_environment: Sequence[pulumi.Resource] = (),
) -> ServiceSupplyChain:
    """MultiArchImage, CosignKeys (keypair mode) and SignedImagesOnly as children of `parent`.

    `release_environment`: what the release environment's secrets must wait for (the environment).
    """
    names = service_names(config, service)
    child = pulumi.ResourceOptions(parent=parent)
    username = registry.username if registry else None
    password = registry.password if registry else None
    serving = registry.serving if registry else []
    image = MultiArchImage(
        names.resource("image"), config, service, username, password, opts=child, registry_serving=serving
    )
    chain = ServiceSupplyChain(image=image, outputs={"image": image.outputs})
    public_key: pulumi.Output[str] | None = None
    if config.signing.mode == "keypair":
        chain.keys = CosignKeys(names.resource("cosign"), config, service, release_environment, opts=child)
        public_key = chain.keys.public_key
        chain.outputs["signing"] = {"mode": "keypair", "publicKey": public_key}
    elif config.signing.mode == "keyless":
        chain.outputs["signing"] = {"mode": "keyless", **keyless_identity(config, service)}
    else:
        chain.outputs["signing"] = {"mode": "none"}
    if signing_enabled(config):
        chain.admission = SignedImagesOnly(
            names.resource("admission"), config, service, public_key, opts=child
        )
    return chain
