"""Pure renderers of the stack's OCI registry: the managed distribution registry's objects, the pull secret.

`managed`: the CNCF distribution registry in the stack's namespace, pinned by digest, with its data on a
PersistentVolumeClaim, TLS from a cert-manager Certificate, htpasswd (bcrypt) authentication, the
restricted Pod Security profile and a NetworkPolicy that admits only its port and lets nothing out.
`external`: an existing registry; only the pull secret is rendered. Credentials arrive as opaque values
(Pulumi secrets in the component) and are placed, never inspected.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from components.config import StackConfig
from components.naming import (
    REGISTRY_PORT,
    REGISTRY_PULL_SECRET,
    REGISTRY_SERVICE,
    platform_labels,
    registry_host,
    registry_url,
)

# distribution/distribution v2.8.3, the Docker Hub `registry` image index (linux/amd64, linux/arm64, ...).
# Refresh with `crane digest docker.io/library/registry:<tag>`; the tag is informative, the digest pins.
REGISTRY_IMAGE = (
    "docker.io/library/registry:2.8.3@sha256:a3d8aaa63ed8681a604f1dea0aa03f100d5895b6a58ace528858a7b332415373"
)
DEFAULT_USERNAME = "roadbike"
HTPASSWD_REALM = "roadbike registry"
RUN_AS_ID = 1000

DATA_CLAIM = f"{REGISTRY_SERVICE}-data"
HTPASSWD_SECRET = f"{REGISTRY_SERVICE}-htpasswd"
TLS_SECRET = f"{REGISTRY_SERVICE}-tls"
CERTIFICATE = TLS_SECRET
PORT_NAME = "registry"

DATA_PATH = "/var/lib/registry"
TLS_PATH = "/etc/registry/tls"
AUTH_PATH = "/etc/registry/auth"
TMP_PATH = "/tmp"
HTPASSWD_FILE = "htpasswd"

RESOURCES = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"cpu": "1", "memory": "512Mi"},
}
TLS_DURATION = "2160h"  # 90 days
TLS_RENEW_BEFORE = "360h"  # 15 days


def is_managed(config: StackConfig) -> bool:
    return config.registry.mode == "managed"


def uses_tls(config: StackConfig) -> bool:
    return config.registry.scheme == "https"


def registry_username(config: StackConfig) -> str | None:
    if is_managed(config):
        return config.registry.username or DEFAULT_USERNAME
    return config.registry.username


def has_credentials(config: StackConfig) -> bool:
    """Managed registries always get a generated password; external ones need both from the config."""
    return is_managed(config) or (
        config.registry.username is not None and config.registry.password is not None
    )


def authentication(config: StackConfig) -> str:
    if is_managed(config):
        return "htpasswd"
    return "basic" if has_credentials(config) else "none"


def registry_props(config: StackConfig) -> dict[str, Any]:
    """What the OciRegistry component declares about itself (the policy pack reads these)."""
    props: dict[str, Any] = {
        "mode": config.registry.mode,
        "host": registry_host(config),
        "url": registry_url(config),
        "scheme": config.registry.scheme,
        "tls": uses_tls(config),
        "authentication": authentication(config),
        "namespace": config.kubernetes.namespace,
        "pullSecret": REGISTRY_PULL_SECRET if has_credentials(config) else None,
    }
    if is_managed(config):
        props["image"] = REGISTRY_IMAGE
    return props


def htpasswd_line(username: str, bcrypt_hash: str) -> str:
    """One `user:hash` line, by construction: the config already keeps the username to a safe set; a
    name that could end the line or the field never gets here, whatever the caller."""
    from components.config import USERNAME

    if not USERNAME.fullmatch(username):
        raise ValueError(f"{username!r} cannot be an htpasswd user name")
    if not bcrypt_hash.isascii() or any(c in bcrypt_hash for c in ":\r\n") or not bcrypt_hash.isprintable():
        raise ValueError("a bcrypt hash is one field of printable ASCII")
    return f"{username}:{bcrypt_hash}\n"


def docker_config_json(host: str, username: str, password: str) -> str:
    """The `.dockerconfigjson` a kubelet (and cosign, and policy-controller) log in with."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    document = {"auths": {host: {"username": username, "password": password, "auth": auth}}}
    return json.dumps(document, sort_keys=True)


def registry_selector() -> dict[str, str]:
    return {"app.kubernetes.io/name": REGISTRY_SERVICE, "app.kubernetes.io/component": "oci-registry"}


def registry_labels(config: StackConfig) -> dict[str, str]:
    return {**platform_labels(config), **registry_selector()}


def _metadata(config: StackConfig, name: str) -> dict[str, Any]:
    return {"name": name, "namespace": config.kubernetes.namespace, "labels": registry_labels(config)}


def htpasswd_secret_manifest(config: StackConfig, htpasswd: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(config, HTPASSWD_SECRET),
        "type": "Opaque",
        "stringData": {HTPASSWD_FILE: htpasswd},
    }


def pull_secret_manifest(config: StackConfig, docker_config: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": REGISTRY_PULL_SECRET,
            "namespace": config.kubernetes.namespace,
            "labels": platform_labels(config),
        },
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": docker_config},
    }


def data_claim_manifest(config: StackConfig) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": config.registry.storage_size}},
    }
    if config.registry.storage_class:
        spec["storageClassName"] = config.registry.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(config, DATA_CLAIM),
        "spec": spec,
    }


def tls_dns_names(config: StackConfig) -> list[str]:
    namespace = config.kubernetes.namespace
    names = [
        REGISTRY_SERVICE,
        f"{REGISTRY_SERVICE}.{namespace}",
        f"{REGISTRY_SERVICE}.{namespace}.svc",
        f"{REGISTRY_SERVICE}.{namespace}.svc.cluster.local",
    ]
    host = registry_host(config).split(":")[0]
    return names if host in names else [*names, host]


def certificate_manifest(config: StackConfig) -> dict[str, Any]:
    """cert-manager issues the serving certificate into TLS_SECRET and renews it; no key passes Pulumi."""
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": _metadata(config, CERTIFICATE),
        "spec": {
            "secretName": TLS_SECRET,
            "issuerRef": {
                "group": "cert-manager.io",
                "kind": "ClusterIssuer",
                "name": config.registry.tls_issuer,
            },
            "dnsNames": tls_dns_names(config),
            "duration": TLS_DURATION,
            "renewBefore": TLS_RENEW_BEFORE,
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "usages": ["server auth", "digital signature"],
        },
    }


def _environment(config: StackConfig) -> list[dict[str, str]]:
    env = {
        "REGISTRY_HTTP_ADDR": f":{REGISTRY_PORT}",
        "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": DATA_PATH,
        "REGISTRY_AUTH": "htpasswd",
        "REGISTRY_AUTH_HTPASSWD_REALM": HTPASSWD_REALM,
        "REGISTRY_AUTH_HTPASSWD_PATH": f"{AUTH_PATH}/{HTPASSWD_FILE}",
    }
    if uses_tls(config):
        env["REGISTRY_HTTP_TLS_CERTIFICATE"] = f"{TLS_PATH}/tls.crt"
        env["REGISTRY_HTTP_TLS_KEY"] = f"{TLS_PATH}/tls.key"
    return [{"name": name, "value": value} for name, value in sorted(env.items())]


def _probe(config: StackConfig, initial_delay: int) -> dict[str, Any]:
    scheme = "HTTPS" if uses_tls(config) else "HTTP"
    return {
        "httpGet": {"path": "/", "port": PORT_NAME, "scheme": scheme},
        "initialDelaySeconds": initial_delay,
        "periodSeconds": 10,
    }


def _volumes(config: StackConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = [
        {"name": "data", "persistentVolumeClaim": {"claimName": DATA_CLAIM}},
        {"name": "auth", "secret": {"secretName": HTPASSWD_SECRET, "defaultMode": 0o440}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "data", "mountPath": DATA_PATH},
        {"name": "auth", "mountPath": AUTH_PATH, "readOnly": True},
        {"name": "tmp", "mountPath": TMP_PATH},
    ]
    if uses_tls(config):
        volumes.append({"name": "tls", "secret": {"secretName": TLS_SECRET, "defaultMode": 0o440}})
        mounts.append({"name": "tls", "mountPath": TLS_PATH, "readOnly": True})
    return volumes, mounts


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_ID,
        "runAsGroup": RUN_AS_ID,
        "fsGroup": RUN_AS_ID,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def deployment_manifest(config: StackConfig) -> dict[str, Any]:
    volumes, mounts = _volumes(config)
    container = {
        "name": REGISTRY_SERVICE,
        "image": REGISTRY_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": PORT_NAME, "containerPort": REGISTRY_PORT, "protocol": "TCP"}],
        "env": _environment(config),
        "volumeMounts": mounts,
        "resources": RESOURCES,
        "securityContext": container_security_context(),
        "readinessProbe": _probe(config, 2),
        "livenessProbe": _probe(config, 10),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(config, REGISTRY_SERVICE),
        "spec": {
            "replicas": 1,
            # One ReadWriteOnce volume: the old pod must let go of it before the new one starts.
            "strategy": {"type": "Recreate"},
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": registry_selector()},
            "template": {
                "metadata": {"labels": registry_labels(config)},
                "spec": {
                    "automountServiceAccountToken": False,
                    # A Service named `registry` would inject REGISTRY_PORT=tcp://..., which the
                    # registry reads as its own configuration and refuses.
                    "enableServiceLinks": False,
                    "securityContext": pod_security_context(),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def service_manifest(config: StackConfig) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(config, REGISTRY_SERVICE),
        "spec": {
            "type": "ClusterIP",
            "selector": registry_selector(),
            "ports": [{"name": PORT_NAME, "port": REGISTRY_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }


def network_policy_manifest(config: StackConfig) -> dict[str, Any]:
    """Ingress to the registry port only; no egress at all (filesystem storage needs none)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(config, REGISTRY_SERVICE),
        "spec": {
            "podSelector": {"matchLabels": registry_selector()},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"ports": [{"protocol": "TCP", "port": REGISTRY_PORT}]}],
        },
    }


def managed_manifests(config: StackConfig) -> list[dict[str, Any]]:
    """The managed registry's objects that hold no credentials, in the order they are created."""
    manifests = [data_claim_manifest(config)]
    if uses_tls(config):
        manifests.append(certificate_manifest(config))
    return [
        *manifests,
        deployment_manifest(config),
        service_manifest(config),
        network_policy_manifest(config),
    ]
