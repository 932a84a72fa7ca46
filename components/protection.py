"""What the platform protects, and what a step that replaced or deleted it would lose.

The engine refuses such a step (`protect`) with its own message, which names the resource only; the
PR preview (`roadbike plan --against`) refuses it too, saying what would be lost and how to do it on
purpose (README: Protection). Each protected type is protected for one reason, kept here.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

REGISTRY_CLAIM_TYPE = "kubernetes:core/v1:PersistentVolumeClaim"
# The engine type of the cosign key pair: `pulumi-python:dynamic/<module>:<name>`.
KEY_PAIR_TYPE = "pulumi-python:dynamic/roadbike:CosignKeyPair"
KEY_PASSWORD_TYPE = "random:index/randomPassword:RandomPassword"
RESIGN = "plan to re-sign the images that run with the new key, or move the stack to `roadbike:signing.mode: keyless`"


@dataclass(frozen=True)
class Kept:
    loses: str  # what a delete or a replacement of the resource would lose
    on_purpose: str  # what to do before unprotecting it


KEPT: dict[str, Kept] = {
    REGISTRY_CLAIM_TYPE: Kept(
        "every image pushed to the registry (the claim's volume holds them)",
        "copy every image out of the registry first (`crane copy`)",
    ),
    KEY_PAIR_TYPE: Kept("the service's cosign key pair: no signature made with it verifies any more", RESIGN),
    KEY_PASSWORD_TYPE: Kept(
        "the password of the service's cosign private key, and with it the key pair", RESIGN
    ),
}
UNKNOWN = Kept("what the resource holds", "copy what it holds first")


def kept(opts: pulumi.ResourceOptions | None = None) -> pulumi.ResourceOptions:
    """`opts`, protected: the engine refuses any step that would delete or replace the resource."""
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(protect=True))


def why_kept(resource_type: str) -> Kept:
    return KEPT.get(resource_type, UNKNOWN)
