"""Every policy of the pack, in a stable order. Domain modules each export POLICIES."""

from __future__ import annotations

from pulumi_policy import Policy

from policies import chaos, github_pipeline, github_repo, kubernetes_core, slo, supply_chain

PACK_NAME = "roadbike"

POLICIES: list[Policy] = [
    *kubernetes_core.POLICIES,
    *github_repo.POLICIES,
    *github_pipeline.POLICIES,
    *chaos.POLICIES,
    *supply_chain.POLICIES,
    *slo.POLICIES,
]
