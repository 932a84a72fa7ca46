"""Where in the stack file a policy violation comes from: the line of the key that causes it.

SARIF results point there, so code scanning annotates the line a pull request has to change. A
violation is traced to its service (by the resource's name), then to the key its policy judges
(`SERVICE_KEYS`, `STACK_KEYS`), as deep as the file has it; the file's first line when nothing matches.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from components.config import PROJECT
from components.yaml_text import FAST_DUMPER, FAST_LOADER

Path_ = tuple[str | int, ...]
_Loader, _Dumper = FAST_LOADER, FAST_DUMPER  # libyaml's: the same nodes and marks, much faster
SERVICES = f"{PROJECT}:services"
# Per policy, the key of a service (then of its list item) that decides it.
SERVICE_KEYS: dict[str, tuple[str, ...]] = {
    "image-multi-arch": ("platforms",),
    "release-workflow-multi-arch": ("platforms",),
    "image-tag-immutable": ("version",),
    "slo-objective-leaves-error-budget": ("slos", "objective"),
    "service-has-slo-alerts": ("slos",),
    "alert-severity-summary-runbook": ("slos",),
    "chaos-prod-opt-in": ("chaosOptIn",),
    "chaos-duration-cap": ("chaos", "duration"),
    "chaos-selector-scoped": ("chaos",),
    "chaos-schedule-concurrency-forbid": ("chaos",),
}
# Per policy, the stack-wide key that decides it.
STACK_KEYS: dict[str, Path_] = {
    "namespace-pod-security-restricted": (f"{PROJECT}:kubernetes", "podSecurity"),
    "registry-https-auth": (f"{PROJECT}:registry", "scheme"),
    "images-from-stack-registry": (f"{PROJECT}:registry",),
    "service-signing-configured": (f"{PROJECT}:signing", "mode"),
    "release-workflow-signs": (f"{PROJECT}:signing", "mode"),
    "prod-environment-reviewers": (f"{PROJECT}:github", "prodReviewers"),
    "webhook-secret-and-tls": (f"{PROJECT}:github", "webhookUrl"),
    "default-branch-requires-ci-checks": (f"{PROJECT}:github", "ownsRepositories"),
}


def key_lines(text: str) -> tuple[dict[Path_, int], Any]:
    """The 1-based line of every key and list item under `config:`, and the config as data."""
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return {}, {}
    lines: dict[Path_, int] = {}
    config = None
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if key.value == "config":
                config = value
                _walk(value, (), lines)
    data = yaml.load(yaml.serialize(config, Dumper=_Dumper), Loader=_Loader) if config is not None else {}
    return lines, data


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, str(key.value))
            lines[child] = key.start_mark.line + 1
            _walk(value, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _walk(item, (*path, index), lines)


def _named_item(items: Any, *texts: str) -> int | None:
    """The index of the list item whose name the resource's name or the message mentions (longest)."""
    best, found = "", None
    for index, item in enumerate(items if isinstance(items, list) else []):
        name = str(item.get("name", "")) if isinstance(item, dict) else ""
        if name and len(name) > len(best) and any(name in text for text in texts):
            best, found = name, index
    return found


def violation_path(policy: str, urn: str, message: str, config: Any) -> Path_:
    """The most specific key path the violation can be traced to (it may go deeper than the file)."""
    if policy in STACK_KEYS:
        return STACK_KEYS[policy]
    found = config.get(SERVICES) if isinstance(config, dict) else None
    services: list[Any] = found if isinstance(found, list) else []
    resource_name = urn.rsplit("::", 1)[-1]
    service = _named_item(services, resource_name)
    if service is None:
        return ()
    path: Path_ = (SERVICES, service)
    keys = SERVICE_KEYS.get(policy, ())
    if keys:
        path = (*path, keys[0])
        entry = services[service]
        item = _named_item(entry.get(keys[0]) if isinstance(entry, dict) else None, resource_name, message)
        if item is not None:
            path = (*path, item, *keys[1:])
    return path


def violation_line(lines: dict[Path_, int], path: Path_) -> int:
    for depth in range(len(path), 0, -1):
        if path[:depth] in lines:
            return lines[path[:depth]]
    return 1


def repository_uri(stack_path: Path) -> str:
    """The stack file's path from the root of its git repository, as code scanning wants it."""
    resolved = stack_path.resolve()
    for directory in resolved.parents:
        if (directory / ".git").exists():
            return resolved.relative_to(directory).as_posix()
    return os.path.basename(resolved)
