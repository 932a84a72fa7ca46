"""`pulumi up` of the Kubernetes side of dev and prod, for real, against a real kube-apiserver.

The real engine, the real kubernetes provider and the policy pack (`pulumi up --policy-pack policies`),
the GitHub side off (`roadbike:github.enabled: false`: its provider cannot be built here), each stack's
explicit provider pointed at the test server by `roadbike:kubernetes.cluster`. One lifecycle per stack,
run once for the module: up, a second up, an SLO change, a chaos experiment removed (dev), a change
that would replace protected data (dev), destroy. Each test reads what one step reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.engine.real_engine import Preview, ScratchStack, scratch_stack
from tests.engine.test_conformance import REGISTRY_PASSWORD
from tests.helpers import roadbike
from tests.kubernetes.apiserver import ApiServer

UP = ("up", "--yes", "--skip-preview", "--policy-pack", "policies")
RULES = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
GATE = "kubernetes:argoproj.io/v1alpha1:AnalysisTemplate"
DASHBOARD = "kubernetes:core/v1:ConfigMap"
SCHEDULE = "kubernetes:chaos-mesh.org/v1alpha1:Schedule"
CLAIM = "kubernetes:core/v1:PersistentVolumeClaim"
KEY_PAIR = "pulumi-python:dynamic/roadbike:CosignKeyPair"


# No controllers run beside the test API server: no Deployment becomes available, no Service gets
# endpoints, no garbage collector finishes a foreground deletion. The scratch copy of the program
# therefore adds the provider's own annotations for that to every Kubernetes object (the committed
# program waits for readiness, as it should on a real cluster).
NO_CONTROLLERS_MAIN = """
import runpy

import pulumi

NO_CONTROLLERS = {"pulumi.com/skipAwait": "true", "pulumi.com/deletionPropagation": "background"}


def no_controllers(args):
    metadata = args.props.get("metadata")
    if not args.type_.startswith("kubernetes:") or not isinstance(metadata, dict):
        return None
    annotations = {**(metadata.get("annotations") or {}), **NO_CONTROLLERS}
    props = {**args.props, "metadata": {**metadata, "annotations": annotations}}
    return pulumi.ResourceTransformResult(props=props, opts=args.opts)


pulumi.runtime.register_resource_transform(no_controllers)
runpy.run_path("program.py", run_name="__main__")
"""


def without_controllers(scratch: ScratchStack) -> None:
    (scratch.project / "__main__.py").rename(scratch.project / "program.py")
    (scratch.project / "__main__.py").write_text(NO_CONTROLLERS_MAIN)


@dataclass
class Lifecycle:
    stack: str
    namespace: str
    plan: Path  # `roadbike plan` of the very stack file the first `pulumi up` read
    steps: dict[str, Preview] = field(default_factory=dict)
    # (kind, namespace, name) -> the object as the server holds it, after each step
    objects: dict[str, dict[tuple[str, str, str], dict[str, Any]]] = field(default_factory=dict)
    # what a strict server-side dry run of the planned objects refused, after the first up
    refused: list[tuple[Any, ...]] = field(default_factory=list)


def edit_stack(scratch: ScratchStack, change: Callable[[dict[str, Any]], None]) -> None:
    """Change the scratch stack file's `roadbike:*` config (a YAML document) in place."""
    document = yaml.safe_load(scratch.stack_file.read_text())
    change(document["config"])
    scratch.stack_file.write_text(yaml.safe_dump(document, sort_keys=False))


def planned_manifests(plan: Path) -> list[dict[str, Any]]:
    """Every object `roadbike plan` wrote under k8s/ (the Secrets, redacted there, by name only)."""
    found = []
    for path in sorted((plan / "k8s").rglob("*.yaml*")):
        if path.name.endswith(".redacted"):
            namespace = path.parent.name
            name = path.name.removeprefix("secret-").removesuffix(".yaml.redacted")
            found.append(
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace}}
            )
        else:
            found.append(yaml.safe_load(path.read_text()))
    return found


UNKNOWN = "output<string>"


def with_known(planned: Any, actual: Any) -> Any:
    """The planned object with each value the plan could not know (`output<string>`, e.g. a public key
    made at `pulumi up`) taken from the actual one, when the actual one has a value there."""
    if planned == UNKNOWN and isinstance(actual, str) and actual:
        return actual
    if isinstance(planned, dict) and isinstance(actual, dict):
        return {k: with_known(v, actual.get(k)) for k, v in planned.items()}
    if isinstance(planned, list) and isinstance(actual, list) and len(planned) == len(actual):
        return [with_known(p, a) for p, a in zip(planned, actual, strict=True)]
    return planned


def key(manifest: dict[str, Any]) -> tuple[str, str, str]:
    metadata = manifest["metadata"]
    return manifest["kind"], metadata.get("namespace", ""), metadata["name"]


def live_objects(
    cluster: ApiServer, manifests: list[dict[str, Any]]
) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The planned objects the server holds now (one being deleted, e.g. a Namespace left Terminating
    without its controller, counts as gone)."""
    found = {}
    for manifest in manifests:
        response = cluster.get(cluster.resource_path(manifest))
        assert response.status_code in (200, 404), response.text[:300]
        if response.status_code == 200 and "deletionTimestamp" not in response.json()["metadata"]:
            found[key(manifest)] = response.json()
    return found


def strictly_refused(cluster: ApiServer, manifests: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The planned objects (Secrets aside: the plan redacts them) a strict server-side dry run refuses
    or warns about: an unknown field is an error there, not the provider's warning."""
    refused = []
    for manifest in manifests:
        if manifest["kind"] == "Secret":
            continue
        response = cluster.apply(cluster.resource_path(manifest), with_known(manifest, None), dry_run=True)
        if response.status_code not in (200, 201) or response.headers.get("Warning"):
            refused.append(
                (key(manifest), response.status_code, response.headers.get("Warning"), response.text[:300])
            )
    return refused


def service(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in config["roadbike:services"] if s["name"] == name)


def run_lifecycle(stack: str, cluster: ApiServer, work: Path) -> Lifecycle:
    settings = {
        "roadbike:github.enabled": "false",
        "roadbike:kubernetes.cluster.context": cluster.context,
        "roadbike:kubernetes.cluster.kubeconfig": str(cluster.kubeconfig),
    }
    secrets = REGISTRY_PASSWORD if stack == "prod" else None
    scratch = scratch_stack(stack, work / "engine", None, settings, secrets)
    without_controllers(scratch)
    plan = work / "plan"
    planned = roadbike("plan", "--stack", stack, "--config-file", str(scratch.stack_file), "--out", str(plan))
    assert planned.returncode == 0, planned.stdout + planned.stderr
    config = yaml.safe_load(scratch.stack_file.read_text())["config"]
    run = Lifecycle(stack, config["roadbike:kubernetes"]["namespace"], plan)
    manifests = planned_manifests(plan)

    def step(name: str, *args: str) -> Preview:
        started = time.perf_counter()
        run.steps[name] = scratch.run(*args)
        run.objects[name] = live_objects(cluster, manifests)
        print(f"{stack} {name}: {run.steps[name].changes()} in {time.perf_counter() - started:.1f}s")
        return run.steps[name]

    step("up", *UP)
    run.refused = strictly_refused(cluster, manifests)
    step("second up", *UP)
    first = service(config, "go-http-server")
    if stack == "dev":
        edit_stack(scratch, lambda c: service(c, "go-http-server")["slos"][0].update(objective=99.95))
        step("slo change", *UP)
    if first.get("chaos"):
        edit_stack(
            scratch,
            lambda c: service(c, "go-http-server").update(
                chaos=[e for e in service(c, "go-http-server")["chaos"] if e["name"] != "pod-kill"]
            ),
        )
        step("chaos removed", *UP)
    if config["roadbike:registry"].get("mode", "managed") == "managed":
        edit_stack(scratch, lambda c: c["roadbike:registry"].update(storageClass="fast-ssd"))
        step("claim replaced", *UP)
        edit_stack(scratch, lambda c: c["roadbike:registry"].pop("storageClass"))
    step("destroy", "destroy", "--yes", "--skip-preview", "--exclude-protected")
    return run


@pytest.fixture(scope="module")
def lifecycles(cluster: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Lifecycle]:
    """dev's and prod's lifecycles at once: their objects are apart (each stack's namespace, and the
    cluster-scoped ones named after it), and each engine waits on the server and its plugins much of
    the time."""
    stacks = ("dev", "prod")
    works = {stack: tmp_path_factory.mktemp(f"up-{stack}") for stack in stacks}
    clients = {stack: replace(cluster, session=requests.Session()) for stack in stacks}  # one per thread
    try:
        with ThreadPoolExecutor(max_workers=len(stacks)) as pool:
            runs = {
                stack: pool.submit(run_lifecycle, stack, clients[stack], works[stack]) for stack in stacks
            }
            return {stack: run.result() for stack, run in runs.items()}
    finally:
        for client in clients.values():
            client.session.close()


# A replacement is reported as its steps (delete-before-replace of a named object: both)
REPLACE_OPS = {"create-replacement": "replace", "delete-replaced": "replace"}


def changed(preview: Preview) -> dict[tuple[str, str], str]:
    """(type, name) -> op of every resource step that is not `same`."""
    found = {}
    for event in preview.events:
        metadata = event.get("resOutputsEvent", {}).get("metadata") or event.get("resOpFailedEvent", {}).get(
            "metadata"
        )
        if metadata and metadata["op"] not in ("same", "read") and metadata["type"] != "pulumi:pulumi:Stack":
            op = REPLACE_OPS.get(metadata["op"], metadata["op"])
            found[(metadata["type"], metadata["urn"].split("::")[-1])] = op
    return found


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_planned_object_is_created_and_accepted_by_the_server(
    lifecycles: dict[str, Lifecycle], stack: str
) -> None:
    run = lifecycles[stack]
    up = run.steps["up"]
    assert up.returncode == 0 and up.result() == "succeeded", up.output[-4000:]
    assert up.violations() == set()
    planned = {key(m) for m in planned_manifests(run.plan)}
    assert set(run.objects["up"]) == planned
    # The server prunes what a CRD's schema does not know: a custom object the server kept as planned
    # was accepted field for field.
    for manifest in planned_manifests(run.plan):
        group = manifest["apiVersion"].rpartition("/")[0]
        if "." in group and not group.endswith(".k8s.io") and "spec" in manifest:  # a CRD's kind
            live = run.objects["up"][key(manifest)]["spec"]
            assert live == with_known(manifest["spec"], live), key(manifest)
    warnings = [e["diagnosticEvent"]["message"] for e in up.events if "diagnosticEvent" in e]
    assert not [w for w in warnings if "unknown field" in w], warnings


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_planned_object_passes_strict_server_side_validation(
    lifecycles: dict[str, Lifecycle], stack: str
) -> None:
    assert lifecycles[stack].refused == []


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_a_second_up_changes_nothing(lifecycles: dict[str, Lifecycle], stack: str) -> None:
    run = lifecycles[stack]
    again = run.steps["second up"]
    assert again.returncode == 0, again.output[-4000:]
    counts = again.changes()
    assert set(counts) == {"same"} and counts["same"] == sum(run.steps["up"].changes().values())
    assert run.objects["second up"] == run.objects["up"]


def test_an_slo_objective_updates_only_that_services_rules_gate_and_dashboard(
    lifecycles: dict[str, Lifecycle],
) -> None:
    run = lifecycles["dev"]
    slo = run.steps["slo change"]
    assert slo.returncode == 0, slo.output[-4000:]
    assert changed(slo) == {
        (RULES, "go-http-server-slo-rules"): "update",
        (GATE, "go-http-server-slo-sli-gate"): "update",
        # pulumi-kubernetes replaces a ConfigMap whose data changes; the dashboard shows the objective
        (DASHBOARD, "go-http-server-slo-dashboard"): "replace",
    }
    rule = run.objects["slo change"][("PrometheusRule", run.namespace, "go-http-server-slo")]
    assert "0.9995" in yaml.safe_dump(rule["spec"])


def test_removing_a_chaos_experiment_deletes_only_its_schedule(lifecycles: dict[str, Lifecycle]) -> None:
    run = lifecycles["dev"]
    removed = run.steps["chaos removed"]
    assert removed.returncode == 0, removed.output[-4000:]
    assert changed(removed) == {(SCHEDULE, "go-http-server-chaos-pod-kill"): "delete"}
    gone = set(run.objects["slo change"]) - set(run.objects["chaos removed"])
    assert gone == {("Schedule", run.namespace, "go-http-server-chaos-pod-kill")}


def test_a_change_that_replaces_the_registry_data_is_refused(lifecycles: dict[str, Lifecycle]) -> None:
    run = lifecycles["dev"]
    refused = run.steps["claim replaced"]
    assert refused.returncode != 0 and refused.result() == "failed"
    assert "registry-data-claim" in refused.output and "protect" in refused.output
    claim = ("PersistentVolumeClaim", run.namespace, "registry-data")
    assert (
        run.objects["claim replaced"][claim]["metadata"]["uid"] == run.objects["up"][claim]["metadata"]["uid"]
    )
    assert "storageClassName" not in run.objects["claim replaced"][claim]["spec"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_destroy_removes_everything_not_protected(lifecycles: dict[str, Lifecycle], stack: str) -> None:
    run = lifecycles[stack]
    destroy = run.steps["destroy"]
    assert destroy.returncode == 0, destroy.output[-4000:]
    kept = set(run.objects["destroy"])
    if stack == "dev":
        # the registry's data and the namespace that holds it; the key pairs are state only
        assert kept == {
            ("PersistentVolumeClaim", run.namespace, "registry-data"),
            ("Namespace", "", run.namespace),
        }
    else:
        assert kept == set()
