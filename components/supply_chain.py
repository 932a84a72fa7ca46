"""A service's supply chain under its DeliveryChain: its image, its signing identity, its admission rule."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi

from components.admission import signing_enabled
from components.admission_component import SignedImagesOnly
from components.config import Service, StackConfig
from components.cosign_keys import CosignKeys
from components.github_pipeline import RegistryCredentials
from components.image_component import MultiArchImage
from components.naming import service_names
from components.registry_component import OciRegistry
from components.signing import keyless_identity


def registry_credentials(registry: OciRegistry | None) -> RegistryCredentials | None:
    """What the release jobs log in with, when the registry has credentials."""
    if registry is None or registry.username is None or registry.password is None:
        return None
    return RegistryCredentials(username=registry.username, password=registry.password)


@dataclass
class ServiceSupplyChain:
    image: MultiArchImage
    keys: CosignKeys | None = None
    admission: SignedImagesOnly | None = None
    outputs: dict[str, Any] = field(default_factory=dict)


def service_supply_chain(
    parent: pulumi.Resource,
    config: StackConfig,
    service: Service,
    registry: OciRegistry | None,
    release_environment: Sequence[pulumi.Resource] = (),
) -> ServiceSupplyChain:
    """MultiArchImage, CosignKeys (keypair mode) and SignedImagesOnly as children of `parent`.

    `release_environment`: what the release environment's secrets must wait for (the environment).
    """
    names = service_names(config, service)
    child = pulumi.ResourceOptions(parent=parent)
    username = registry.username if registry else None
    password = registry.password if registry else None
    serving = registry.serving if registry else []
    image = MultiArchImage(
        names.resource("image"), config, service, username, password, opts=child, registry_serving=serving
    )
    chain = ServiceSupplyChain(image=image, outputs={"image": image.outputs})
    public_key: pulumi.Output[str] | None = None
    if config.signing.mode == "keypair":
        chain.keys = CosignKeys(names.resource("cosign"), config, service, release_environment, opts=child)
        public_key = chain.keys.public_key
        chain.outputs["signing"] = {"mode": "keypair", "publicKey": public_key}
    elif config.signing.mode == "keyless":
        chain.outputs["signing"] = {"mode": "keyless", **keyless_identity(config, service)}
    else:
        chain.outputs["signing"] = {"mode": "none"}
    if signing_enabled(config):
        chain.admission = SignedImagesOnly(
            names.resource("admission"), config, service, public_key, opts=child
        )
    return chain
