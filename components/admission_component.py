"""SignedImagesOnly: the ClusterImagePolicy that admits only a service's signed images from the stack's registry."""

from __future__ import annotations

from typing import Any

import pulumi

from components.admission import service_image_policy
from components.config import Service, StackConfig
from components.k8s_resources import custom_resource

TYPE = "roadbike:admission:SignedImagesOnly"


class SignedImagesOnly(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        service: Service,
        public_key: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(TYPE, name, {"service": service.name, "mode": config.signing.mode}, opts)
        manifest: dict[str, Any] = service_image_policy(config, service, public_key)
        self.policy = custom_resource(name, manifest, pulumi.ResourceOptions(parent=self))
        self.register_outputs({"policy": manifest["metadata"]["name"]})
