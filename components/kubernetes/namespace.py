"""Pure renderers of the core Kubernetes objects the platform owns in the stack's namespace."""

from __future__ import annotations

from typing import Any

from components.chaos.schedules import namespace_annotations as chaos_namespace_annotations
from components.config import StackConfig
from components.naming import platform_labels

POD_SECURITY_VERSION = "latest"


def pod_security_labels(level: str) -> dict[str, str]:
    """Pod Security Admission labels that enforce, audit and warn at one profile (`restricted` by default)."""
    labels: dict[str, str] = {}
    for mode in ("enforce", "audit", "warn"):
        labels[f"pod-security.kubernetes.io/{mode}"] = level
        labels[f"pod-security.kubernetes.io/{mode}-version"] = POD_SECURITY_VERSION
    return labels


def namespace_manifest(config: StackConfig) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": config.kubernetes.namespace,
        "labels": {**platform_labels(config), **pod_security_labels(config.kubernetes.pod_security)},
    }
    annotations = chaos_namespace_annotations(config)
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}
