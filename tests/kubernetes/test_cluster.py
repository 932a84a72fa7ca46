"""Each stack names its cluster: the explicit provider's settings and the kubeconfig check."""

from __future__ import annotations

from pathlib import Path

import yaml

from components.kubernetes.cluster import cluster_problem, provider_args
from tests.helpers import parse, run_raw, stack_raw
from tests.kubernetes.apiserver import kubeconfig_document

SOURCE = "stacks/Pulumi.dev.yaml"


def kubeconfig(tmp_path: Path, context: str) -> Path:
    path = tmp_path / "config"
    path.write_text(
        yaml.safe_dump(kubeconfig_document("https://127.0.0.1:6443", tmp_path / "ca", "t", context))
    )
    return path


def test_the_provider_targets_the_configured_context_never_the_machines_kubeconfig() -> None:
    assert provider_args(parse(stack_raw("dev"))) == {"context": "acme-dev", "kubeconfig": ""}
    raw = stack_raw("dev")
    raw["kubernetes"].pop("cluster")
    raw["kubernetes"]["gitops"] = {"directory": "deploy/dev"}
    assert provider_args(parse(raw)) == {"render_yaml_to_directory": "deploy/dev", "kubeconfig": ""}


def test_every_kubernetes_resource_goes_through_the_stacks_provider() -> None:
    run = run_raw(stack_raw("dev"), stack="dev")
    [provider] = [r for r in run.resources if r.type == "pulumi:providers:kubernetes"]
    assert provider.inputs == {"context": "acme-dev", "kubeconfig": ""}
    kubernetes = [r for r in run.resources if r.type.startswith("kubernetes:")]
    assert len(kubernetes) > 20
    assert {r.provider.rsplit("::", 1)[0] for r in kubernetes} == {provider.urn}


def test_a_context_missing_from_the_kubeconfig_is_refused_naming_the_key(tmp_path: Path) -> None:
    config = parse(stack_raw("dev"))
    environ = {"KUBECONFIG": str(kubeconfig(tmp_path, "kind-kind"))}
    for preview in (True, False):
        problem = cluster_problem(config, environ, SOURCE, preview=preview)
        assert problem is not None
        assert problem.startswith(f"{SOURCE}: roadbike:kubernetes.cluster.context: context 'acme-dev' is not")
        assert "its contexts: kind-kind" in problem
    environ = {"KUBECONFIG": str(kubeconfig(tmp_path, "acme-dev"))}
    assert cluster_problem(config, environ, SOURCE, preview=False) is None


def test_up_needs_the_kubeconfig_a_preview_does_not(tmp_path: Path) -> None:
    raw = stack_raw("dev")
    raw["kubernetes"]["cluster"]["kubeconfig"] = str(tmp_path / "missing")
    config = parse(raw)
    assert cluster_problem(config, {}, SOURCE, preview=True) is None
    problem = cluster_problem(config, {}, SOURCE, preview=False)
    assert problem is not None and problem.startswith(f"{SOURCE}: roadbike:kubernetes.cluster.kubeconfig: ")


def test_a_file_that_is_not_a_kubeconfig_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config").write_text("contexts: {a: 1}\n")
    problem = cluster_problem(
        parse(stack_raw("dev")), {"KUBECONFIG": str(tmp_path / "config")}, SOURCE, preview=True
    )
    assert problem is not None and "not a kubeconfig" in problem
