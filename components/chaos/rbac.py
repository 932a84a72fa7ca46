"""The RBAC that lets the deployer create a service's chaos schedules: a Role and RoleBinding in the
stack's namespace only.
"""

from __future__ import annotations

from typing import Any

from components.config import Service, StackConfig
from components.naming import ServiceNames, service_names

RBAC_API_GROUP = "rbac.authorization.k8s.io"


CHAOS_API_GROUP = "chaos-mesh.org"


# The Schedule and the kinds it creates: Chaos Mesh's auth webhook checks the creator may create them.
CHAOS_RESOURCES = ("schedules", "networkchaos", "stresschaos", "podchaos")


CHAOS_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")


def rbac_name(names: ServiceNames) -> str:
    return names.resource("chaos")


def role_manifest(config: StackConfig, service: Service) -> dict[str, Any]:
    """Namespaced rights on the chaos kinds: the deployer can create schedules here and nowhere else."""
    names = service_names(config, service)
    return {
        "apiVersion": f"{RBAC_API_GROUP}/v1",
        "kind": "Role",
        "metadata": {"name": rbac_name(names), "namespace": names.namespace, "labels": names.labels},
        "rules": [
            {
                "apiGroups": [CHAOS_API_GROUP],
                "resources": list(CHAOS_RESOURCES),
                "verbs": list(CHAOS_VERBS),
            }
        ],
    }


def deployer_subject(config: StackConfig) -> dict[str, str]:
    deployer = config.kubernetes.deployer
    if deployer.kind == "ServiceAccount":
        namespace = deployer.namespace or config.kubernetes.namespace
        return {"kind": "ServiceAccount", "name": deployer.name, "namespace": namespace}
    return {"kind": deployer.kind, "name": deployer.name, "apiGroup": RBAC_API_GROUP}


def role_binding_manifest(config: StackConfig, service: Service) -> dict[str, Any]:
    names = service_names(config, service)
    return {
        "apiVersion": f"{RBAC_API_GROUP}/v1",
        "kind": "RoleBinding",
        "metadata": {"name": rbac_name(names), "namespace": names.namespace, "labels": names.labels},
        "roleRef": {"apiGroup": RBAC_API_GROUP, "kind": "Role", "name": rbac_name(names)},
        "subjects": [deployer_subject(config)],
    }
