"""Small readers for resource properties as the engine passes them (camelCase, Mapping/Sequence proxies)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource, ResourceValidationArgs


def get_path(props: Any, *path: str | int, default: Any = None) -> Any:
    """props["a"]["b"][0] without KeyError; `default` where any step is missing."""
    current = props
    for step in path:
        if isinstance(step, int):
            if not isinstance(current, Sequence) or isinstance(current, str) or step >= len(current):
                return default
            current = current[step]
        else:
            if not isinstance(current, Mapping) or step not in current:
                return default
            current = current[step]
    return default if current is None else current


def of_type(resources: Iterable[PolicyResource], resource_type: str) -> list[PolicyResource]:
    return [r for r in resources if r.resource_type == resource_type]


def as_list(value: Any) -> list[Any]:
    if value is None or isinstance(value, (str, bytes, Mapping)):
        return [] if value is None else [value]
    return list(value)


def resource_label(args: ResourceValidationArgs | PolicyResource) -> str:
    """e.g. `Deployment 'registry'`: the resource's kind and its name, for messages."""
    name = get_path(args.props, "metadata", "name") or get_path(args.props, "service") or args.name
    return f"{args.resource_type.rsplit(':', 1)[-1]} {name!r}"
