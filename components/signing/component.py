"""CosignKeys: a service's cosign key pair, made once and kept in state, handed to its release environment;
SignedImagesOnly: the ClusterImagePolicy that admits only its signed images from the stack's registry.

The key pair is a dynamic resource: `create` runs `generate_key_pair` once (the only scrypt at N=2^16),
later runs read it back from state, and it is replaced only when its password is. The private key and
its password go to the service repository's release environment as the Actions secrets the release
workflow reads (`COSIGN_PRIVATE_KEY`, `COSIGN_PASSWORD`); only the public key leaves as an output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi.dynamic as dynamic
import pulumi_github as github
import pulumi_random as random
from pulumi.dynamic.dynamic import PROVIDER_KEY

from components.config import Service, StackConfig
from components.github.steps import SECRET_COSIGN_PASSWORD, SECRET_COSIGN_PRIVATE_KEY
from components.kubernetes.component import custom_resource
from components.naming import release_environment, service_names
from components.protection import kept
from components.secret_output import secret
from components.signing.admission import service_image_policy
from components.signing.keys import generate_key_pair

TYPE = "roadbike:signing:CosignKeys"
PASSWORD_LENGTH = 40
SECRET_OUTPUTS = ["privateKey", "password"]


class CosignKeyPairProvider(dynamic.ResourceProvider):
    """Creates the key pair from its inputs `service` and `password`; never regenerates it on its own."""

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        pair = generate_key_pair(str(props["password"]).encode())
        outs = {
            "service": props["service"],
            "password": props["password"],
            "publicKey": pair.public_key_pem,
            "privateKey": pair.private_key_pem,
        }
        return dynamic.CreateResult(id_=pair.fingerprint, outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        # A new password needs a new encryption, so a new key pair; a new provider build changes nothing.
        replaces = [key for key in ("password", "service") if olds.get(key) != news.get(key)]
        return dynamic.DiffResult(changes=bool(replaces), replaces=replaces, delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], _news: dict[str, Any]) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(outs={k: v for k, v in olds.items() if k != PROVIDER_KEY})


class CosignKeyPair(dynamic.Resource, module="roadbike", name="CosignKeyPair"):
    # Output attributes carry the engine (camelCase) names of the provider's outputs.
    publicKey: pulumi.Output[str]
    privateKey: pulumi.Output[str]

    def __init__(
        self, name: str, service: str, password: pulumi.Input[str], opts: pulumi.ResourceOptions | None = None
    ) -> None:
        props = {
            "service": service,
            "password": secret(password),
            "publicKey": None,
            "privateKey": None,
        }
        secret_outputs = pulumi.ResourceOptions(additional_secret_outputs=SECRET_OUTPUTS)
        super().__init__(
            CosignKeyPairProvider(), name, props, pulumi.ResourceOptions.merge(opts, secret_outputs)
        )


class CosignKeys(pulumi.ComponentResource):
    """Output `publicKey` (PEM); the private key and password only in the release environment's secrets."""

    def __init__(
        self,
        name: str,
        config: StackConfig,
        service: Service,
        depends_on: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        environment = release_environment(config)
        props = {"service": service.name, "repository": service.repository, "environment": environment}
        super().__init__(TYPE, name, props, opts)
        names = service_names(config, service)
        # Every signature made with the key pair needs it (and the password that encrypts its private
        # key): the engine refuses to delete or replace either (README: Protection).
        protected = kept(pulumi.ResourceOptions(parent=self))
        password = random.RandomPassword(
            names.resource("cosign-password"), length=PASSWORD_LENGTH, special=False, opts=protected
        )
        secret_password = secret(password.result)
        self.key_pair = CosignKeyPair(
            names.resource("cosign-key-pair"), service.name, secret_password, opts=protected
        )
        self.public_key: pulumi.Output[str] = self.key_pair.publicKey
        in_environment = pulumi.ResourceOptions(parent=self, depends_on=list(depends_on))
        handed_to_environment = (
            ((SECRET_COSIGN_PRIVATE_KEY, self.key_pair.privateKey), (SECRET_COSIGN_PASSWORD, secret_password))
            if config.github.enabled
            else ()
        )
        for secret_name, value in handed_to_environment:
            github.ActionsEnvironmentSecret(
                names.resource(f"environment-{environment}-{secret_name.lower().replace('_', '-')}"),
                repository=service.repository,
                environment=environment,
                secret_name=secret_name,
                value=secret(value),
                opts=in_environment,
            )
        self.outputs: dict[str, Any] = {"mode": "keypair", "publicKey": self.public_key}
        self.register_outputs(self.outputs)


SIGNED_IMAGES_ONLY_TYPE = "roadbike:admission:SignedImagesOnly"


class SignedImagesOnly(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        service: Service,
        public_key: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            SIGNED_IMAGES_ONLY_TYPE, name, {"service": service.name, "mode": config.signing.mode}, opts
        )
        manifest: dict[str, Any] = service_image_policy(config, service, public_key)
        self.policy = custom_resource(name, manifest, pulumi.ResourceOptions(parent=self))
        self.register_outputs({"policy": manifest["metadata"]["name"]})
