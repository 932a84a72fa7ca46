"""A service team's own Pulumi program: it deploys its service from the roadbike platform's stack outputs.

Everything it needs from the platform comes through a stack reference: the image repository and tag, the
signing identity images are admitted by, the registry and its credentials (a secret from end to end).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

config = pulumi.Config()
platform_stack = config.get("platformStack") or "organization/roadbike/dev"
service_name = config.get("service") or "go-http-server"
replicas = config.get_int("replicas") or 2

platform = pulumi.StackReference(platform_stack)


def platform_service(services: Any) -> dict[str, Any]:
    if not isinstance(services, dict) or service_name not in services:
        known = ", ".join(sorted(services)) if isinstance(services, dict) else "none"
        raise pulumi.RunError(
            f"{platform_stack} has no service {service_name!r} in its outputs (it has: {known})"
        )
    return services[service_name]


def image_of(service: dict[str, Any]) -> str:
    """The digest when the platform built the image, else the version's tag, in the service's repository."""
    image = service["image"]
    return image.get("ref") or f"{image['repository']}:{image['tag']}"


def docker_config_json(registry: dict[str, Any]) -> str:
    """A kubernetes.io/dockerconfigjson document for the platform's registry, its credentials only."""
    if not registry.get("username") or not registry.get("password"):
        raise pulumi.RunError(f"{platform_stack}: the registry has no credentials in its outputs")
    login = f"{registry['username']}:{registry['password']}"
    auth = {"username": registry["username"], "password": registry["password"]}
    auth["auth"] = base64.b64encode(login.encode()).decode()
    return json.dumps({"auths": {registry["host"]: auth}}, sort_keys=True)


def signing_data(service: dict[str, Any]) -> dict[str, str]:
    """What the service's images are signed with: the cosign public key, or the keyless identity."""
    signing = service.get("signing") or {"mode": "none"}
    data = {"mode": signing["mode"]}
    if signing["mode"] == "keypair":
        data["cosign.pub"] = signing["publicKey"]
    elif signing["mode"] == "keyless":
        data.update(issuer=signing["issuer"], identity=signing["identity"])
    return data


service = platform.require_output("services").apply(platform_service)
# The registry output holds the password: the stack reference keeps all of it secret.
registry: pulumi.Output[dict[str, Any]] = platform.require_output("registry")
# secret in its own right too, whatever the reference reports
docker_config: pulumi.Output[str] = pulumi.Output.secret(registry.apply(docker_config_json))
namespace = config.get("namespace") or service.apply(lambda s: str(s["namespace"]))

cluster = k8s.Provider(
    "cluster",
    context=config.require("context"),
    kubeconfig=config.get("kubeconfig"),  # unset: $KUBECONFIG or ~/.kube/config, as kubectl reads it
)
in_cluster = pulumi.ResourceOptions(provider=cluster)
labels = {"app.kubernetes.io/name": service_name, "app.kubernetes.io/managed-by": "pulumi"}

pull_secret = k8s.core.v1.Secret(
    "registry-pull",
    metadata={"name": f"{service_name}-registry-pull", "namespace": namespace, "labels": labels},
    type="kubernetes.io/dockerconfigjson",
    string_data={".dockerconfigjson": docker_config},
    opts=in_cluster,
)

signing = k8s.core.v1.ConfigMap(
    "signing",
    metadata={"name": f"{service_name}-signing", "namespace": namespace, "labels": labels},
    data=service.apply(signing_data),
    opts=in_cluster,
)

restricted = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
}
deployment = k8s.apps.v1.Deployment(
    "service",
    metadata={"name": service_name, "namespace": namespace, "labels": labels},
    spec={
        "replicas": replicas,
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "imagePullSecrets": [{"name": pull_secret.metadata["name"]}],
                "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [
                    {
                        "name": service_name,
                        "image": service.apply(image_of),
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "securityContext": restricted,
                    }
                ],
            },
        },
    },
    opts=in_cluster,
)

pulumi.export("image", deployment.spec.template.spec.containers[0].image)
pulumi.export("pullSecret", pull_secret.metadata["name"])
pulumi.export("signing", signing.metadata["name"])
