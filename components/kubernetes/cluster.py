"""Which cluster a stack deploys to: the explicit Kubernetes provider's settings, and the kubeconfig check.

A stack names its cluster (`roadbike:kubernetes.cluster`: a kubeconfig context, optionally the file) or
writes the manifests instead (`roadbike:kubernetes.gitops.directory`); the current context is never used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from components.config import ClusterConfig, StackConfig, key_path

# A kubeconfig larger than this is not one (they are a few KiB); it is not read.
KUBECONFIG_MAX_BYTES = 4 * 1024 * 1024


def provider_args(config: StackConfig) -> dict[str, Any]:
    """The `pulumi_kubernetes.Provider` arguments of the stack: its cluster, or GitOps mode."""
    kubernetes = config.kubernetes
    # The SDK would fill an unset kubeconfig from this machine's $KUBECONFIG: an empty one keeps the
    # plan the same on every machine, and lets the provider read $KUBECONFIG itself, as kubectl does.
    if kubernetes.gitops is not None:
        return {"render_yaml_to_directory": kubernetes.gitops.directory, "kubeconfig": ""}
    assert kubernetes.cluster is not None  # StackConfig requires one of them
    return {"context": kubernetes.cluster.context, "kubeconfig": kubernetes.cluster.kubeconfig or ""}


def target_line(config: StackConfig) -> str:
    """One line saying where the stack's Kubernetes objects go."""
    kubernetes = config.kubernetes
    if kubernetes.gitops is not None:
        return f"kubernetes: GitOps mode, manifests written to {kubernetes.gitops.directory}/"
    assert kubernetes.cluster is not None
    source = kubernetes.cluster.kubeconfig or "$KUBECONFIG or ~/.kube/config"
    return f"kubernetes: context {kubernetes.cluster.context} of {source}, namespace {kubernetes.namespace}"


def kubeconfig_files(cluster: ClusterConfig, environ: Mapping[str, str]) -> list[Path]:
    """The files kubectl would read: the configured one, else $KUBECONFIG's list, else ~/.kube/config."""
    if cluster.kubeconfig is not None:
        return [Path(cluster.kubeconfig).expanduser()]
    listed = [Path(p).expanduser() for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    return listed or [Path("~/.kube/config").expanduser()]


def kubeconfig_contexts(path: Path) -> set[str]:
    """The context names of one kubeconfig file; OSError or ValueError when it is not a readable one."""
    with path.open("rb") as handle:
        text = handle.read(KUBECONFIG_MAX_BYTES + 1)
    if len(text) > KUBECONFIG_MAX_BYTES:
        raise ValueError(f"larger than {KUBECONFIG_MAX_BYTES // (1024 * 1024)} MiB")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"not YAML ({str(error).splitlines()[0]})") from None
    if document is None:
        return set()
    if not isinstance(document, dict) or not isinstance(document.get("contexts") or [], list):
        raise ValueError("not a kubeconfig (no contexts list)")
    return {str(c["name"]) for c in document.get("contexts") or [] if isinstance(c, dict) and "name" in c}


def cluster_problem(
    config: StackConfig, environ: Mapping[str, str], source: str, preview: bool
) -> str | None:
    """Why the stack's cluster cannot be used, as one line naming the key; None when it can.

    In a preview, no kubeconfig at all is allowed (the provider previews without the cluster, as in CI);
    `pulumi up` needs the file, and a file without the context is refused either way.
    """
    cluster = config.kubernetes.cluster
    if cluster is None:
        return None
    files = kubeconfig_files(cluster, environ)
    key = ("kubernetes", "cluster", "kubeconfig" if cluster.kubeconfig is not None else "context")
    contexts: set[str] = set()
    readable = []
    for path in files:
        try:
            contexts |= kubeconfig_contexts(path)
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as error:
            return f"{source}: {key_path(key)}: the kubeconfig {path} cannot be read: {error}"
        readable.append(path)
    shown = ", ".join(str(p) for p in files)
    if not readable:
        if preview:
            return None
        return (
            f"{source}: {key_path(key)}: no kubeconfig at {shown}: pulumi up needs the file that holds "
            f"context {cluster.context!r} (set roadbike:kubernetes.cluster.kubeconfig, or KUBECONFIG)"
        )
    if cluster.context not in contexts:
        known = ", ".join(sorted(contexts)[:10]) or "none"
        return (
            f"{source}: {key_path(('kubernetes', 'cluster', 'context'))}: context {cluster.context!r} is "
            f"not in the kubeconfig {shown} (its contexts: {known})"
        )
    return None
