"""DeliveryPlatform (one per stack) and DeliveryChain (one per service): the ComponentResource tree."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_github as github
import pulumi_kubernetes as k8s

from components.config import Service, StackConfig
from components.github_repo import default_branch_ruleset_args, repository_args
from components.kubernetes import namespace_manifest
from components.naming import ServiceNames, service_names


class DeliveryChain(pulumi.ComponentResource):
    """Everything one Go service's delivery chain needs; later domains add their components as children."""

    def __init__(
        self,
        name: str,
        config: StackConfig,
        service: Service,
        namespace: k8s.core.v1.Namespace,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("roadbike:chain:DeliveryChain", name, None, opts)
        self.names: ServiceNames = service_names(config, service)
        child = pulumi.ResourceOptions(parent=self)

        self.repository = github.Repository(
            self.names.resource("repository"), opts=child, **repository_args(config, service)
        )
        self.default_branch_ruleset = github.RepositoryRuleset(
            self.names.resource("default-branch"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.repository]),
            **default_branch_ruleset_args(config, service),
        )

        self.outputs: dict[str, Any] = {
            "repository": f"{config.github.owner}/{service.repository}",
            "namespace": config.kubernetes.namespace,
            "version": service.version,
            "platforms": list(service.platforms),
        }
        self.register_outputs(self.outputs)


class DeliveryPlatform(pulumi.ComponentResource):
    """The stack's delivery platform: the namespace and one DeliveryChain per service."""

    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("roadbike:platform:DeliveryPlatform", name, None, opts)
        manifest = namespace_manifest(config)
        self.namespace = k8s.core.v1.Namespace(
            config.kubernetes.namespace,
            metadata=manifest["metadata"],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.chains = {
            service.name: DeliveryChain(
                service.name, config, service, self.namespace, pulumi.ResourceOptions(parent=self)
            )
            for service in config.services
        }
        self.outputs: dict[str, Any] = {
            "environment": config.environment,
            "namespace": config.kubernetes.namespace,
            "services": {name: chain.outputs for name, chain in self.chains.items()},
        }
        self.register_outputs(self.outputs)
