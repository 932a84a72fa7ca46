"""Synthetic fleets: the dev stack's services repeated under new names, N in all."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from components.config import PROJECT

REPO = Path(__file__).resolve().parent.parent


def fleet_config(services: int, base_stack: str = "dev", github: bool = True) -> dict[str, Any]:
    document = yaml.safe_load((REPO / "stacks" / f"Pulumi.{base_stack}.yaml").read_text())
    config = document["config"]
    templates = config[f"{PROJECT}:services"]
    fleet = []
    for index in range(services):
        service = copy.deepcopy(templates[index % len(templates)])
        service["name"] = f"svc-{index:04d}"
        service["repository"] = f"svc-{index:04d}"
        fleet.append(service)
    config[f"{PROJECT}:services"] = fleet
    if not github:  # the cluster side alone, as the real engine previews it here (no pulumi-github)
        config[f"{PROJECT}:github"] = {**config[f"{PROJECT}:github"], "enabled": False}
    return document


def write_fleet(path: Path, services: int, github: bool = True) -> Path:
    path.write_text(yaml.safe_dump(fleet_config(services, github=github), sort_keys=False))
    return path
