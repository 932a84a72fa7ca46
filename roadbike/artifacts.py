"""The files a plan writes for people and tools to read: what each resource would put in the world.

Kubernetes objects and repository files come from the recorded resources (what `pulumi up` would send),
the rest (e.g. promtool tests) from the pure renderers in `components.artifacts`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.artifacts import render_artifacts
from components.config import StackConfig
from components.yaml_text import to_yaml
from roadbike.program import ProgramRun, RecordedResource

REPOSITORY_FILE = "github:index/repositoryFile:RepositoryFile"
MANIFEST_HEAD = ("apiVersion", "kind", "metadata")
CLUSTER_SCOPE_DIR = "_cluster"  # cluster-scoped objects (a ClusterImagePolicy) belong to no namespace
# A Secret's values are `[secret]` in the plan: applied, it would overwrite the real one. kubectl reads
# only .json, .yaml and .yml, so `kubectl apply -f k8s/` leaves these alone.
REDACTED_SUFFIX = ".redacted"
REDACTED_HEADER = (
    "# Redacted by roadbike plan: every value below is [secret]. Not for kubectl apply:\n"
    "# pulumi up creates this Secret with its real values.\n"
)


def _sorted_tree(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted_tree(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_tree(v) for v in value]
    return value


def kubernetes_manifest(resource: RecordedResource) -> dict[str, Any]:
    """The object as it would be applied: apiVersion, kind, metadata first, the rest in key order."""
    body = _sorted_tree(resource.inputs)
    ordered = {key: body[key] for key in MANIFEST_HEAD if key in body}
    ordered.update({k: v for k, v in body.items() if k not in MANIFEST_HEAD})
    return ordered


def is_kubernetes_object(resource: RecordedResource) -> bool:
    return resource.custom and resource.type.startswith("kubernetes:") and "kind" in resource.inputs


def manifest_path(manifest: dict[str, Any]) -> str:
    metadata = manifest.get("metadata") or {}
    name = metadata.get("name", "unnamed")
    kind = str(manifest.get("kind", "object")).lower()
    namespace = metadata.get("namespace") or (name if kind == "namespace" else CLUSTER_SCOPE_DIR)
    suffix = REDACTED_SUFFIX if kind == "secret" else ""
    return f"k8s/{namespace}/{kind}-{name}.yaml{suffix}"


class ArtifactConflict(Exception):
    """Two sources render the same artifact path: one would silently replace the other in the world."""

    def __init__(self, path: str, first: str, second: str) -> None:
        super().__init__(f"two resources render {path}: {first}, {second}")
        self.path, self.first, self.second = path, first, second


def _artifact(resource: RecordedResource) -> tuple[str, str] | None:
    """The (path, text) a resource puts in the plan, if it is an object or a repository file."""
    if is_kubernetes_object(resource):
        manifest = kubernetes_manifest(resource)
        path = manifest_path(manifest)
        header = REDACTED_HEADER if path.endswith(REDACTED_SUFFIX) else ""
        return path, header + to_yaml(manifest)
    if resource.type == REPOSITORY_FILE:
        inputs = resource.inputs
        content = inputs.get("content", "")
        path = f"github/{inputs.get('repository')}/{inputs.get('file')}"
        return path, content if isinstance(content, str) else str(content)
    return None


def resource_artifacts(run: ProgramRun) -> dict[str, str]:
    """Every resource's artifact by path; raises ArtifactConflict when two resources share a path."""
    files: dict[str, str] = {}
    sources: dict[str, str] = {}
    for resource in run.resources:
        artifact = _artifact(resource)
        if artifact is None:
            continue
        path, text = artifact
        if path in sources:
            raise ArtifactConflict(path, sources[path], resource.urn)
        sources[path] = resource.urn
        files[path] = text
    return files


def all_artifacts(
    run: ProgramRun, config: StackConfig, config_files: dict[str, str] | None = None
) -> dict[str, str]:
    """The resources' artifacts and the config's (`config_files`, when already rendered from `config`)."""
    files = resource_artifacts(run)
    for path, text in (render_artifacts(config) if config_files is None else config_files).items():
        if path in files:
            raise ArtifactConflict(path, "a resource", f"the {path} renderer")
        files[path] = text
    return files


def write_tree(root: Path, files: dict[str, str]) -> None:
    for relative in sorted(files):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[relative], encoding="utf-8")
