"""Every policy of the pack, in a stable order. Each domain module exports POLICIES."""

from __future__ import annotations

from pulumi_policy import Policy

from policies import chaos, delivery, github, images, kubernetes, plaintext, registry, signing, slo

PACK_NAME = "roadbike"

POLICIES: list[Policy] = [
    *kubernetes.POLICIES,
    *github.POLICIES,
    *chaos.POLICIES,
    *images.POLICIES,
    *registry.POLICIES,
    *signing.POLICIES,
    *slo.POLICIES,
    *delivery.POLICIES,
    *plaintext.POLICIES,
]
