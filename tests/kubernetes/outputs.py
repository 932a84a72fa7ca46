"""The platform's stack outputs as they are consumed after `pulumi up`, read while the stack is deployed.

`pulumi stack output --json` as the real CLI prints it, with `--show-secrets` and without, and the service
team's own program (examples/service-team) previewed, deployed and destroyed with the real engine on the
platform's file backend, reading the platform's outputs through a StackReference.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.engine.real_engine import Preview, ScratchStack, scratch_stack
from tests.helpers import REPO, roadbike
from tests.kubernetes.apiserver import ApiServer
from tests.live import registry_server

EXAMPLE = REPO / "examples" / "service-team"
EXAMPLE_STACK = "dev"
SERVICE = "go-http-server"
# prod's own namespace is the lifecycle's (tests/kubernetes/test_up.py); this one names prod too
LIVE_REGISTRY_NAMESPACE = "delivery-prod-live"


@dataclass
class ConsumedOutputs:
    shown: Path  # `pulumi stack output --json --show-secrets`
    masked: Path  # `pulumi stack output --json`
    example: dict[str, Preview] = field(default_factory=dict)  # preview, up, destroy of the team's program
    # kind -> the team's object as the server held it after its up (None: not found)
    objects: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    example_state: str = ""  # `pulumi stack export --show-secrets=false` of the team's stack after its up


def stack_output(scratch: ScratchStack, into: Path, *flags: str) -> Path:
    done = scratch.pulumi("stack", "output", "--stack", scratch.stack, "--json", *flags)
    assert done.returncode == 0, f"pulumi stack output {' '.join(flags)}: {done.stderr}"
    into.write_text(done.stdout)
    return into


def example_objects(cluster: ApiServer, namespace: str) -> dict[str, dict[str, Any] | None]:
    wanted = {
        "Secret": ("v1", f"{SERVICE}-registry-pull"),
        "ConfigMap": ("v1", f"{SERVICE}-signing"),
        "Deployment": ("apps/v1", SERVICE),
    }
    found: dict[str, dict[str, Any] | None] = {}
    for kind, (api_version, name) in wanted.items():
        manifest = {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
        }
        response = cluster.get(cluster.resource_path(manifest))
        assert response.status_code in (200, 404), response.text[:300]
        found[kind] = response.json() if response.status_code == 200 else None
    return found


def service_team_stack(platform: ScratchStack, cluster: ApiServer, work: Path) -> ScratchStack:
    """The team's program copied beside the platform's, its stack on the same backend, configured."""
    from tests.kubernetes.test_up import without_controllers  # test_up calls into this module

    project = work / "service-team"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("venv", "__pycache__", "Pulumi.*.yaml"))
    (project / "venv").symlink_to(Path(sys.executable).parent.parent)  # Pulumi.yaml: virtualenv: venv
    team = ScratchStack(EXAMPLE_STACK, project, platform.env)
    without_controllers(team)
    init = team.pulumi("stack", "init", EXAMPLE_STACK, "--secrets-provider", "passphrase")
    assert init.returncode == 0, f"pulumi stack init (service-team): {init.stderr}"
    team.configure(
        {
            "service-team:platformStack": f"organization/roadbike/{platform.stack}",
            "service-team:context": cluster.context,
            "service-team:kubeconfig": str(cluster.kubeconfig),
        }
    )
    return team


def consume_outputs(
    platform: ScratchStack, cluster: ApiServer, namespace: str, work: Path
) -> ConsumedOutputs:
    """The platform's outputs read by the CLI and by the team's program, while the platform is up."""
    started = time.perf_counter()
    work.mkdir(parents=True)
    consumed = ConsumedOutputs(
        shown=stack_output(platform, work / "outputs.json", "--show-secrets"),
        masked=stack_output(platform, work / "outputs-masked.json"),
    )
    team = service_team_stack(platform, cluster, work)
    consumed.example["preview"] = team.run("preview", streaming_preview=True)
    consumed.example["up"] = team.run("up", "--yes", "--skip-preview")
    consumed.objects = example_objects(cluster, namespace)
    exported = team.pulumi("stack", "export", "--stack", EXAMPLE_STACK)
    assert exported.returncode == 0, f"pulumi stack export (service-team): {exported.stderr}"
    consumed.example_state = exported.stdout
    consumed.example["destroy"] = team.run("destroy", "--yes", "--skip-preview")
    steps = ", ".join(f"{name} {run.changes()}" for name, run in consumed.example.items())
    print(f"{platform.stack} outputs consumed: service-team {steps} in {time.perf_counter() - started:.1f}s")
    return consumed


@dataclass
class LiveRegistryRun:
    up: Preview
    shown: Path  # `pulumi stack output --json --show-secrets` after that up
    verify: subprocess.CompletedProcess[str]  # `roadbike verify --only registry images signatures`
    destroy: Preview
    password: str  # the registry's, set as the stack's secret


def prod_on_a_live_registry(cluster: ApiServer, work: Path) -> LiveRegistryRun:
    """`pulumi up` of prod with its external registry a real one on 127.0.0.1 (its user, its password as
    the stack's secret), each service's image and a signature pushed there as its release workflow would,
    then `roadbike verify` of the real output against it."""
    from tests.kubernetes.test_up import UP, without_controllers  # test_up calls into this module

    with registry_server(work / "registry") as registry:
        settings = {
            "roadbike:github.enabled": "false",
            "roadbike:kubernetes.cluster.context": cluster.context,
            "roadbike:kubernetes.cluster.kubeconfig": str(cluster.kubeconfig),
            "roadbike:kubernetes.namespace": LIVE_REGISTRY_NAMESPACE,
            "roadbike:registry.host": registry.host,
            "roadbike:registry.username": registry.username,
        }
        platform = scratch_stack(
            "prod", work / "engine", None, settings, {"roadbike:registry.password": registry.password}
        )
        without_controllers(platform)
        up = platform.run(*UP)
        assert up.returncode == 0, up.output[-4000:]
        shown = stack_output(platform, work / "outputs.json", "--show-secrets")
        for service in json.loads(shown.read_text())["services"].values():
            name = service["image"]["repository"].removeprefix(f"{registry.host}/")
            digest = registry.push_index(name, service["image"]["tag"], service["platforms"])
            registry.push_legacy_signature(name, digest)
        verify = roadbike(
            "verify",
            "--outputs",
            str(shown),
            "--only",
            "registry",
            "images",
            "signatures",
            "--ca-bundle",
            str(registry.ca_bundle),
            "--json",
        )
        destroy = platform.run("destroy", "--yes", "--skip-preview")
    return LiveRegistryRun(up, shown, verify, destroy, registry.password)
