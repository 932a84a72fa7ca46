"""What the engine sends the policy pack in a preview, where it differs from what the program registered.

Resource policies get the provider's *checked* inputs, stack policies each resource's *outputs* (the
provider's preview of a create; for a component, what `register_outputs` returned); the Stack and the
default providers the engine makes are analysed too. Each rule here is what the real providers do, as
recorded from the real `pulumi preview --policy-pack` (tests/engine/test_conformance.py holds the plan to
it); values unknown in a first preview are the engine's unknown, secrets keep the engine's secret marker.
"""

from __future__ import annotations

import base64
from typing import Any

from pulumi.runtime import rpc

from roadbike.program import SECRET_SIG, SECRET_SIG_KEY, STACK_TYPE, RecordedResource, is_secret

SECRET_TYPE = "kubernetes:core/v1:Secret"
PROVIDER_TYPE_PREFIX = "pulumi:providers:"
DYNAMIC_PACKAGE = "pulumi-python"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
# pulumi-random's schema defaults, filled in by its preview of a create.
RANDOM_PASSWORD_DEFAULTS = {
    "lower": True,
    "minLower": 0,
    "minNumeric": 0,
    "minSpecial": 0,
    "minUpper": 0,
    "number": True,
    "numeric": True,
    "special": True,
    "upper": True,
}
IMAGE = "docker-build:index:Image"
# pulumi-docker-build's Check decodes the inputs into its Go types and back: every field of those types
# comes back, zero-valued where unset (the cache's compression has its documented default).
IMAGE_DEFAULTS = {
    "dockerfile": {"inline": "", "location": ""},
    "exec": False,
    "load": False,
    "noCache": False,
    "pull": False,
    "target": "",
}
CACHE_DEFAULTS = {"disabled": False, "raw": ""}
REGISTRY_CACHE_TO_DEFAULTS = {
    "compression": "gzip",
    "compressionLevel": 0,
    "forceCompression": False,
    "ignoreError": False,
}
# Default providers' inputs beyond the version: their config's zero values.
PROVIDER_DEFAULTS: dict[str, dict[str, Any]] = {"docker-build": {"host": ""}}
# Computed outputs a first preview does not know, per type (secret ones marked so by the provider).
PREVIEW_UNKNOWNS: dict[str, dict[str, bool]] = {
    RANDOM_PASSWORD: {"id": False, "result": True, "bcryptHash": True},
    IMAGE: {"contextHash": False, "digest": False, "ref": False},
}


def secret(value: Any) -> dict[str, Any]:
    return {SECRET_SIG_KEY: SECRET_SIG, "value": value}


def _unwrap(value: Any) -> tuple[Any, bool]:
    return (value["value"], True) if is_secret(value) else (value, False)


def is_known(value: Any) -> bool:
    if value == rpc.UNKNOWN:
        return False
    if isinstance(value, dict):
        return all(is_known(v) for v in value.values())
    if isinstance(value, list):
        return all(is_known(v) for v in value)
    return True


def _kubernetes_secret(inputs: dict[str, Any]) -> dict[str, Any]:
    """pulumi-kubernetes' Check of a Secret: a known `stringData` is base64-encoded into `data` (its
    keys winning, as the API server merges them) and dropped; the result is secret if either was."""
    if "stringData" not in inputs or not is_known(inputs["stringData"]):
        return inputs
    string_data, string_secret = _unwrap(inputs["stringData"])
    data, data_secret = _unwrap(inputs.get("data") or {})
    encoded = {}
    for key, value in string_data.items():
        text, _ = _unwrap(value)
        encoded[key] = base64.b64encode(str(text).encode()).decode()
    merged = {**data, **encoded}
    checked = {k: v for k, v in inputs.items() if k != "stringData"}
    checked["data"] = secret(merged) if string_secret or data_secret else merged
    return checked


def _known_or_empty(value: Any) -> Any:
    """A string field the Go decoding cannot hold unknown: empty instead (in its secret marker if any)."""
    inner, was_secret = _unwrap(value)
    if inner != rpc.UNKNOWN:
        return value
    return secret("") if was_secret else ""


def _docker_build_image(inputs: dict[str, Any]) -> dict[str, Any]:
    checked = {**IMAGE_DEFAULTS, **inputs}
    checked["cacheFrom"] = [{**CACHE_DEFAULTS, **entry} for entry in inputs.get("cacheFrom", [])]
    cache_to = []
    for entry in inputs.get("cacheTo", []):
        entry = {**CACHE_DEFAULTS, **entry}
        if "registry" in entry:
            entry["registry"] = {**REGISTRY_CACHE_TO_DEFAULTS, **entry["registry"]}
        cache_to.append(entry)
    checked["cacheTo"] = cache_to
    checked["registries"] = [
        {key: _known_or_empty(value) for key, value in registry.items()}
        for registry in inputs.get("registries", [])
    ]
    return {key: value for key, value in checked.items() if value != [] or key in inputs}


def checked_inputs(resource: RecordedResource) -> dict[str, Any]:
    """The inputs after the provider's Check, as resource policies get them."""
    inputs = resource.inputs
    if resource.type.startswith(DYNAMIC_PACKAGE + ":"):
        return {k: v for k, v in inputs.items() if k != "__provider"}  # the pickled provider stays local
    if resource.type == SECRET_TYPE:
        return _kubernetes_secret(inputs)
    if resource.type == IMAGE:
        return _docker_build_image(inputs)
    if resource.type.startswith(PROVIDER_TYPE_PREFIX) and resource.version:
        return {**inputs, "version": resource.version}  # an explicit provider: the engine adds its version
    return inputs


def preview_outputs(resource: RecordedResource) -> dict[str, Any]:
    """A resource's outputs in a preview, as stack policies get them."""
    if not resource.custom:
        return resource.outputs or {}
    outputs = dict(checked_inputs(resource))
    if resource.type == RANDOM_PASSWORD:
        outputs = {**RANDOM_PASSWORD_DEFAULTS, **outputs}
    for name, is_secret_output in PREVIEW_UNKNOWNS.get(resource.type, {}).items():
        outputs[name] = secret(rpc.UNKNOWN) if is_secret_output else rpc.UNKNOWN
    return outputs


def package(resource_type: str) -> str:
    return resource_type.split(":", 1)[0]


def engine_only_resources(
    resources: list[RecordedResource], stack_urn: str, config: dict[str, str], secret_keys: list[str]
) -> list[RecordedResource]:
    """The Stack and the default providers the engine makes (one per package a custom resource uses
    without an explicit provider at a version, in the order first used), analysed as the engine analyses
    them."""
    prefix = stack_urn.split("::", 2)
    base = "::".join(prefix[:2])
    stack_name = stack_urn.rsplit("::", 1)[-1]
    found = [RecordedResource(stack_urn, STACK_TYPE, stack_name, False, "", [], {}, {}, outputs={})]
    seen: set[tuple[str, str]] = set()
    for resource in resources:
        name = package(resource.type)
        explicit_provider = resource.type.startswith(PROVIDER_TYPE_PREFIX)
        if not resource.custom or resource.provider or explicit_provider or (name, resource.version) in seen:
            continue
        seen.add((name, resource.version))
        provider_name = "default" + ("_" + resource.version.replace(".", "_") if resource.version else "")
        properties = {**PROVIDER_DEFAULTS.get(name, {}), **_provider_config(name, config, secret_keys)}
        if resource.version:
            properties["version"] = resource.version
        urn = f"{base}::pulumi:providers:{name}::{provider_name}"
        found.append(
            RecordedResource(
                urn,
                f"pulumi:providers:{name}",
                provider_name,
                True,
                "",
                [],
                {},
                properties,
                outputs=properties,
            )
        )
    return found


def _provider_config(name: str, config: dict[str, str], secret_keys: list[str]) -> dict[str, Any]:
    """A default provider's inputs from the stack config: its package's keys, and for dynamic providers
    (which read the program's config) every key."""
    selected = {
        (key if name == DYNAMIC_PACKAGE else key.split(":", 1)[1]): (
            secret(value) if key in secret_keys else value
        )
        for key, value in sorted(config.items())
        if name == DYNAMIC_PACKAGE or key.startswith(name + ":")
    }
    return selected
