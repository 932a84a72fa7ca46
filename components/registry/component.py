"""OciRegistry: the stack's OCI registry (managed in-cluster, or external), wrapped in Kubernetes resources."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.config import StackConfig
from components.kubernetes.component import custom_resource
from components.naming import REGISTRY_SERVICE, registry_host, registry_url
from components.protection import kept
from components.registry import manifests as registry
from components.secret_output import secret
from components.signing.admission import pinned_image_policy, signing_enabled

TYPE = "roadbike:registry:OciRegistry"
PASSWORD_LENGTH = 40
SERVING_KINDS = ("Certificate", "Deployment", "Service")


class OciRegistry(pulumi.ComponentResource):
    """Registry host, URL, credentials (the password is a secret) and the namespace's pull secret."""

    def __init__(
        self,
        name: str,
        config: StackConfig,
        namespace: k8s.core.v1.Namespace,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(TYPE, name, registry.registry_props(config), opts)
        self._namespace = namespace
        self._in_namespace = pulumi.ResourceOptions(parent=self, depends_on=[namespace])
        # What a push to the managed registry waits for (its Deployment, Service, Certificate); empty if external.
        self.serving: list[pulumi.Resource] = []
        self.host = registry_host(config)
        self.url = registry_url(config)
        self.username = registry.registry_username(config)
        self.password: pulumi.Output[str] | None = None
        if registry.is_managed(config):
            self.password = self._managed(config)
        elif config.registry.password is not None:
            self.password = secret(config.registry.password.get_secret_value())
        self.pull_secret: str | None = None
        if self.username is not None and self.password is not None:
            self.pull_secret = self._pull_secret(config, self.username, self.password)
        self.outputs: dict[str, Any] = {
            "host": self.host,
            "url": self.url,
            "username": self.username,
            "password": self.password,
            "pullSecret": self.pull_secret,
        }
        self.register_outputs(self.outputs)

    def _object(
        self, manifest: dict[str, Any], after: list[pulumi.Resource] | None = None
    ) -> pulumi.Resource:
        name = manifest["metadata"]["name"]
        kind = manifest["kind"]
        body = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind")}
        if kind == "Deployment":
            opts = pulumi.ResourceOptions(parent=self, depends_on=[self._namespace, *(after or [])])
            return k8s.apps.v1.Deployment(f"{name}-deployment", opts=opts, **body)
        if kind == "Service":
            return k8s.core.v1.Service(f"{name}-service", opts=self._in_namespace, **body)
        if kind == "PersistentVolumeClaim":
            # The registry's images live here: the engine refuses to delete or replace it (README: Protection).
            return k8s.core.v1.PersistentVolumeClaim(f"{name}-claim", opts=kept(self._in_namespace), **body)
        if kind == "NetworkPolicy":
            return k8s.networking.v1.NetworkPolicy(f"{name}-network-policy", opts=self._in_namespace, **body)
        if kind == "Secret":
            return k8s.core.v1.Secret(
                f"{name}-secret", opts=self._in_namespace, string_data=body.pop("stringData"), **body
            )
        return custom_resource(f"{name}-{kind.lower()}", manifest, self._in_namespace)

    def _managed(self, config: StackConfig) -> pulumi.Output[str]:
        password = random.RandomPassword(
            f"{REGISTRY_SERVICE}-password",
            length=PASSWORD_LENGTH,
            special=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        username = registry.registry_username(config) or registry.DEFAULT_USERNAME
        htpasswd = secret(password.bcrypt_hash).apply(
            lambda bcrypt_hash: registry.htpasswd_line(username, bcrypt_hash)
        )
        if writes_secrets(config):
            self._object(registry.htpasswd_secret_manifest(config, htpasswd))
        # In a namespace that admits only signed images, the registry's pod is admitted by this policy.
        admission: list[pulumi.Resource] = []
        if signing_enabled(config):
            admission.append(
                self._object(pinned_image_policy(config, REGISTRY_SERVICE, registry.REGISTRY_IMAGE))
            )
        for manifest in registry.managed_manifests(config):
            created = self._object(manifest, admission)
            if manifest["kind"] in SERVING_KINDS:
                self.serving.append(created)
        return secret(password.result)

    def _pull_secret(self, config: StackConfig, username: str, password: pulumi.Output[str]) -> str:
        host = registry_host(config)
        docker_config = secret(password).apply(
            lambda value: registry.docker_config_json(host, username, value)
        )
        manifest = registry.pull_secret_manifest(config, docker_config)
        if writes_secrets(config):
            self._object(manifest)
        return str(manifest["metadata"]["name"])


def writes_secrets(config: StackConfig) -> bool:
    """GitOps mode writes manifests to files that go to a Git repository, where a Secret would be in
    clear: the registry's Secrets are then left to the team's secret manager (see the README)."""
    return config.kubernetes.gitops is None
