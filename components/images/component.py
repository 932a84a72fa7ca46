"""MultiArchImage: a service's image coordinates, and its bootstrap build when the config asks for one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_docker_build as docker_build

from components.config import Service, StackConfig
from components.images.build import builds_image, image_build_args, image_outputs, image_props
from components.naming import registry_host, service_names
from components.secret_output import secret

TYPE = "roadbike:images:MultiArchImage"


class MultiArchImage(pulumi.ComponentResource):
    """Outputs `repository`, `tag`, and `digest`/`ref` (`<repository>@<digest>`) once the platform builds it."""

    def __init__(
        self,
        name: str,
        config: StackConfig,
        service: Service,
        username: str | None,
        password: pulumi.Input[str] | None,
        opts: pulumi.ResourceOptions | None = None,
        registry_serving: Sequence[pulumi.Resource] = (),
    ) -> None:
        """`registry_serving`: what the push waits for (the managed registry's Deployment, Service...)."""
        super().__init__(TYPE, name, image_props(config, service), opts)
        self.outputs: dict[str, Any] = dict(image_outputs(config, service))
        self.image: docker_build.Image | None = None
        if builds_image(service):
            self.image = docker_build.Image(
                service_names(config, service).resource("image"),
                registries=_registries(config, username, password),
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(registry_serving)),
                **image_build_args(config, service),
            )
            repository = self.outputs["repository"]
            self.outputs["digest"] = self.image.digest
            self.outputs["ref"] = self.image.digest.apply(lambda digest: f"{repository}@{digest}")
        self.register_outputs(self.outputs)


def _registries(
    config: StackConfig, username: str | None, password: pulumi.Input[str] | None
) -> list[docker_build.RegistryArgs] | None:
    if username is None or password is None:
        return None
    address = registry_host(config)
    return [docker_build.RegistryArgs(address=address, username=username, password=secret(password))]
