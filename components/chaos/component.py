"""ChaosSchedules: a service's Chaos Mesh Schedules and the namespaced RBAC that lets the deployer create them."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.chaos.rbac import role_binding_manifest, role_manifest
from components.chaos.schedules import schedule_manifests
from components.config import Service, StackConfig
from components.kubernetes.component import custom_resource


class ChaosSchedules(pulumi.ComponentResource):
    """One `Schedule` custom resource per chaos experiment of the service, plus its Role and RoleBinding."""

    def __init__(
        self,
        name: str,
        config: StackConfig,
        service: Service,
        namespace: pulumi.Resource,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("roadbike:chaos:ChaosSchedules", name, None, opts)
        # Pulumi does not pass a component's depends_on to its children: each names the namespace itself.
        self._namespace = namespace
        role = role_manifest(config, service)
        self.role = k8s.rbac.v1.Role(
            role["metadata"]["name"],
            metadata=role["metadata"],
            rules=role["rules"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[namespace]),
        )
        binding = role_binding_manifest(config, service)
        self.role_binding = k8s.rbac.v1.RoleBinding(
            binding["metadata"]["name"],
            metadata=binding["metadata"],
            role_ref=binding["roleRef"],
            subjects=binding["subjects"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[namespace, self.role]),
        )
        manifests = schedule_manifests(config, service)
        self.schedules = [self._schedule(manifest) for manifest in manifests]
        self.outputs: dict[str, Any] = {"schedules": [m["metadata"]["name"] for m in manifests]}
        self.register_outputs(self.outputs)

    def _schedule(self, manifest: dict[str, Any]) -> k8s.apiextensions.CustomResource:
        return custom_resource(
            manifest["metadata"]["name"],
            manifest,
            pulumi.ResourceOptions(parent=self, depends_on=[self._namespace, self.role_binding]),
        )
