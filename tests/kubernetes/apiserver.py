"""A real Kubernetes API server on 127.0.0.1: etcd and kube-apiserver, built from their Go modules.

`make kube-apiserver` builds both (tools/go-tools.txt). The server runs with its own admission chain and
RBAC, TLS from a self-signed certificate, one static token in `system:masters`, no controllers (none are
needed: the point is the server's admission and schema validation). The upstream CRDs that `make crds`
fetched are installed by server-side apply and waited for until Established. Both processes are stopped
by their PIDs when the context exits.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.helpers import crds, go_tools_bin, require_tool
from tests.live import free_port, running, self_signed_certificate, wait_until

CONTEXT = "roadbike-test"
STARTUP_SECONDS = 120.0
ESTABLISHED_SECONDS = 60.0
HTTP_TIMEOUT = 30.0
FIELD_MANAGER = "roadbike-tests"


_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class GoYamlLoader(_BaseLoader):  # type: ignore[valid-type, misc]
    """YAML as Go's parsers (the API server, Argo CD, Flux) read it: a plain `=` (an enum value of
    prometheus-operator's CRDs, AlertmanagerConfig's `matchType: =`) is the string "=", not YAML 1.1's
    value key. libyaml's parser when PyYAML has it (the upstream CRDs are megabytes); the resolver
    stays PyYAML's, so the same implicit resolvers apply."""


GoYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:value"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass
class ApiServer:
    url: str
    token: str
    ca_bundle: Path
    kubeconfig: Path
    context: str = CONTEXT
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.session.headers["Authorization"] = f"Bearer {self.token}"
        self.session.verify = str(self.ca_bundle)
        self.session.trust_env = False  # no proxies, no REQUESTS_CA_BUNDLE: this server only

    def get(self, path: str, **params: str) -> requests.Response:
        return self.session.get(f"{self.url}{path}", params=params, timeout=HTTP_TIMEOUT)

    def apply(self, path: str, manifest: dict[str, Any], dry_run: bool = False) -> requests.Response:
        """Server-side apply of one object at `path` (its REST path), unknown fields refused (Strict)."""
        params = {"fieldManager": FIELD_MANAGER, "fieldValidation": "Strict", "force": "true"}
        if dry_run:
            params["dryRun"] = "All"
        return self.session.patch(
            f"{self.url}{path}",
            params=params,
            data=yaml.safe_dump(manifest).encode(),
            headers={"Content-Type": "application/apply-patch+yaml"},
            timeout=HTTP_TIMEOUT,
        )

    def resource_path(self, manifest: dict[str, Any]) -> str:
        """The REST path of an object, from the server's discovery of its group and version."""
        api_version, kind = manifest["apiVersion"], manifest["kind"]
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        found = self.get(base)
        assert found.status_code == 200, f"{api_version} is not served: {found.text[:300]}"
        resource = next(
            (r for r in found.json()["resources"] if r["kind"] == kind and "/" not in r["name"]), None
        )
        assert resource is not None, f"{kind} is not served in {api_version}"
        metadata = manifest["metadata"]
        namespace = f"/namespaces/{metadata['namespace']}" if resource["namespaced"] else ""
        return f"{base}{namespace}/{resource['name']}/{metadata['name']}"

    def objects(self, api_version: str, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        path = f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
        response = self.get(path)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text[:300]}"
        return list(response.json()["items"])


def kubeconfig_document(url: str, ca_bundle: Path, token: str, context: str = CONTEXT) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": url, "certificate-authority": str(ca_bundle)}}],
        "users": [{"name": context, "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
    }


def _binary(name: str) -> str:
    path = go_tools_bin() / name
    if not path.exists():
        raise AssertionError(f"{name} is not built in {path.parent}: run `make kube-apiserver`")
    return str(path)


def _service_account_key(directory: Path) -> Path:
    """The key kube-apiserver signs (and checks) service account tokens with."""
    key = directory / "service-account.key"
    # SEC1 ("EC PRIVATE KEY"): the form kube-apiserver reads as both the signing and the checking key
    command = [require_tool("openssl"), "ecparam", "-genkey", "-name", "prime256v1", "-noout"]
    subprocess.run([*command, "-out", str(key)], check=True, capture_output=True, timeout=30)
    return key


@contextlib.contextmanager
def etcd_server(directory: Path) -> Iterator[str]:
    """etcd on 127.0.0.1 (client and peer ports free, data in `directory`); its client URL."""
    binary = _binary("etcd")
    directory.mkdir(parents=True, exist_ok=True)
    client, peer = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    command = [
        binary,
        "--name=roadbike-test",
        f"--data-dir={directory / 'data'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=roadbike-test={peer}",
        "--log-level=warn",
        "--unsafe-no-fsync",  # a test store: durability costs seconds per `pulumi up` and buys nothing
    ]
    log = directory / "etcd.log"
    with running(command, log) as process:
        wait_until(
            lambda: requests.get(f"{client}/health", timeout=1).json().get("health") == "true",
            "etcd",
            process,
            log,
        )
        yield client


@contextlib.contextmanager
def api_server(directory: Path) -> Iterator[ApiServer]:
    """etcd and kube-apiserver on free ports of 127.0.0.1, the upstream CRDs installed and Established."""
    binary = _binary("kube-apiserver")
    directory.mkdir(parents=True, exist_ok=True)
    certificate = self_signed_certificate(directory)
    service_account_key = _service_account_key(directory)
    token = secrets.token_hex(24)
    tokens = directory / "tokens.csv"
    tokens.write_text(f'{token},roadbike-test,roadbike-test,"system:masters"\n')
    tokens.chmod(0o600)
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    with etcd_server(directory / "etcd") as etcd:
        command = [
            binary,
            f"--etcd-servers={etcd}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none",  # no kubernetes Service endpoint: nothing runs in-cluster
            f"--secure-port={port}",
            f"--tls-cert-file={certificate.cert}",
            f"--tls-private-key-file={certificate.key}",
            f"--token-auth-file={tokens}",
            "--authorization-mode=RBAC",
            f"--service-account-key-file={service_account_key}",
            f"--service-account-signing-key-file={service_account_key}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--service-cluster-ip-range=10.96.0.0/16",
            f"--cert-dir={directory / 'certs'}",
            "--profiling=false",
            "--v=0",
        ]
        log = directory / "kube-apiserver.log"
        with running(command, log) as process:
            server = ApiServer(
                url=url,
                token=token,
                ca_bundle=certificate.cert,
                kubeconfig=directory / "kubeconfig",
            )
            server.kubeconfig.write_text(yaml.safe_dump(kubeconfig_document(url, certificate.cert, token)))
            server.kubeconfig.chmod(0o600)
            wait_until(
                lambda: server.get("/readyz").status_code == 200,
                "kube-apiserver",
                process,
                log,
                STARTUP_SECONDS,
            )
            try:
                install_crds(server)
                with garbage_collector(server):
                    yield server
            finally:
                server.session.close()


def install_crds(server: ApiServer) -> list[str]:
    """Server-side apply of every upstream CRD `make crds` fetched; their names, once Established."""
    names = []
    for path in sorted((crds() / "manifests").glob("*.yaml")):
        manifest = yaml.load(path.read_text(), Loader=GoYamlLoader)
        name = manifest["metadata"]["name"]
        # policy-controller's CRD converts through its own webhook, which does not run here: the
        # schemas stay as upstream wrote them, only the conversion is the server's own (`None`).
        if manifest["spec"].get("conversion", {}).get("strategy") == "Webhook":
            manifest["spec"]["conversion"] = {"strategy": "None"}
        applied = server.apply(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}", manifest)
        assert applied.status_code in (200, 201), (
            f"CRD {path.name}: {applied.status_code} {applied.text[:500]}"
        )
        names.append(name)
    end = time.monotonic() + ESTABLISHED_SECONDS
    pending = set(names)
    while pending and time.monotonic() < end:
        for name in sorted(pending):
            found = server.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}").json()
            conditions = {c["type"]: c["status"] for c in found.get("status", {}).get("conditions", [])}
            if conditions.get("Established") == "True":
                pending.discard(name)
        if pending:
            time.sleep(0.2)
    assert not pending, f"CRDs not Established in {ESTABLISHED_SECONDS:g}s: {', '.join(sorted(pending))}"
    return names


FOREGROUND = "foregroundDeletion"


def collection_paths(server: ApiServer) -> list[str]:
    """Every resource collection the server serves (every version), to list across namespaces."""
    paths = []
    groups = ["/api/v1"] + [
        f"/apis/{v['groupVersion']}" for g in server.get("/apis").json()["groups"] for v in g["versions"]
    ]
    for base in groups:
        for resource in server.get(base).json()["resources"]:
            if "/" not in resource["name"] and {"list", "patch"} <= set(resource["verbs"]):
                paths.append(f"{base}/{resource['name']}")
    return paths


@contextlib.contextmanager
def garbage_collector(server: ApiServer, interval: float = 1.0) -> Iterator[None]:
    """The one step of kube-controller-manager's garbage collector that matters here: an object deleted
    in the foreground (the provider's default) whose dependents are gone loses its `foregroundDeletion`
    finalizer. The objects here have no owner references, so none has dependents."""
    paths = collection_paths(server)
    stop = threading.Event()

    def sweep() -> None:
        session = requests.Session()
        session.headers.update(server.session.headers)
        session.verify = server.session.verify
        session.trust_env = False
        while not stop.wait(interval):
            for path in paths:
                with contextlib.suppress(requests.RequestException, ValueError, KeyError):
                    for item in session.get(f"{server.url}{path}", timeout=HTTP_TIMEOUT).json()["items"]:
                        metadata = item["metadata"]
                        if "deletionTimestamp" in metadata and FOREGROUND in metadata.get("finalizers", []):
                            _drop_finalizer(session, server.url, path, metadata)
        session.close()

    thread = threading.Thread(target=sweep, name="garbage-collector", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=HTTP_TIMEOUT)


def _drop_finalizer(session: requests.Session, url: str, path: str, metadata: dict[str, Any]) -> None:
    base, plural = path.rsplit("/", 1)
    namespace = f"/namespaces/{metadata['namespace']}" if metadata.get("namespace") else ""
    kept = [f for f in metadata["finalizers"] if f != FOREGROUND]
    session.patch(
        f"{url}{base}{namespace}/{plural}/{metadata['name']}",
        json={"metadata": {"finalizers": kept, "resourceVersion": metadata["resourceVersion"]}},
        headers={"Content-Type": "application/merge-patch+json"},
        timeout=HTTP_TIMEOUT,
    )
