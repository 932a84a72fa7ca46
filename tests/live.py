"""Real servers on 127.0.0.1 for the verify tests: a registry, Prometheus, and a small HTTP service.

Each is started on a free port by the test process and always stopped. The registry is the Debian
`docker-registry` (distribution) with htpasswd auth and TLS; images and cosign-format signatures are
pushed to it through the OCI distribution API. Prometheus is the Debian `prometheus`, loading rule files.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import bcrypt
import requests
import yaml
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.helpers import require_tool

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
STARTUP_SECONDS = 30.0
HTTP_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def digest_of(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


@contextlib.contextmanager
def running(command: Sequence[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A server process that is always stopped (terminate, then kill), whatever the test did."""
    with log.open("wb") as sink:
        process = subprocess.Popen(list(command), stdout=sink, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def wait_until(
    ready: Any, what: str, process: subprocess.Popen[bytes], log: Path, seconds: float = STARTUP_SECONDS
) -> None:
    """Poll `ready()` (bounded by `seconds`); fail with the server's log if it never gets there or exits."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if process.poll() is not None:
            raise AssertionError(
                f"{what} exited with {process.returncode}:\n{log.read_text(errors='replace')}"
            )
        with contextlib.suppress(requests.RequestException):
            if ready():
                return
        time.sleep(0.1)
    raise AssertionError(f"{what} not ready in {seconds:g}s:\n{log.read_text(errors='replace')[-5000:]}")


# --- TLS -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


def self_signed_certificate(directory: Path) -> Certificate:
    """A self-signed CA certificate for 127.0.0.1 (it is its own CA bundle)."""
    openssl = require_tool("openssl")
    cert, key = directory / "registry.crt", directory / "registry.key"
    command = [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    command += ["-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1"]
    command += ["-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(
        command,
        check=True,
        capture_output=True,
        timeout=30,
    )
    return Certificate(cert=cert, key=key)


# --- registry --------------------------------------------------------------------------------------


@dataclass
class Registry:
    host: str
    url: str
    username: str
    password: str
    ca_bundle: Path
    session: requests.Session = field(default_factory=requests.Session)
    # the key cosign signatures pushed by the tests are made with (ECDSA P-256, as cosign's)
    signing_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    @property
    def public_key_pem(self) -> str:
        return (
            self.signing_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def __post_init__(self) -> None:
        self.session.auth = (self.username, self.password)
        self.session.verify = str(self.ca_bundle)
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE would override `verify`; no proxies either

    def push_blob(self, name: str, content: bytes) -> dict[str, Any]:
        digest = digest_of(content)
        started = self.session.post(f"{self.url}/v2/{name}/blobs/uploads/", timeout=HTTP_TIMEOUT)
        assert started.status_code == 202, started.text
        location = urljoin(f"{self.url}/", started.headers["Location"])
        separator = "&" if "?" in location else "?"
        done = self.session.put(
            f"{location}{separator}digest={digest}",
            data=content,
            headers={"Content-Type": "application/octet-stream"},
            timeout=HTTP_TIMEOUT,
        )
        assert done.status_code == 201, done.text
        return {"digest": digest, "size": len(content)}

    def push_manifest(self, name: str, reference: str, document: dict[str, Any]) -> dict[str, Any]:
        content = canonical(document)
        media_type = document["mediaType"]
        response = self.session.put(
            f"{self.url}/v2/{name}/manifests/{reference}",
            data=content,
            headers={"Content-Type": media_type},
            timeout=HTTP_TIMEOUT,
        )
        assert response.status_code == 201, response.text
        digest = digest_of(content)
        assert response.headers["Docker-Content-Digest"] == digest
        return {"mediaType": media_type, "digest": digest, "size": len(content)}

    def push_platform_image(self, name: str, platform: str) -> dict[str, Any]:
        os_name, arch = platform.split("/")
        layer = self.push_blob(name, f"{name} {platform} binary".encode())
        config = self.push_blob(
            name,
            canonical(
                {
                    "architecture": arch,
                    "os": os_name,
                    "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
                }
            ),
        )
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, **config},
            "layers": [{"mediaType": OCI_LAYER, **layer}],
        }
        descriptor = self.push_manifest(name, digest_of(canonical(manifest)), manifest)
        return {**descriptor, "platform": {"os": os_name, "architecture": arch}}

    def push_index(self, name: str, tag: str, platforms: Sequence[str]) -> str:
        """A multi-arch image: one manifest per platform and an OCI index tagged `tag`; its digest."""
        manifests = [self.push_platform_image(name, platform) for platform in platforms]
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        return str(self.push_manifest(name, tag, index)["digest"])

    def push_legacy_signature(self, name: str, digest: str) -> str:
        """A cosign (<= v2) signature: tag `sha256-<hex>.sig`, one simplesigning layer with the signature."""
        payload = canonical(
            {
                "critical": {
                    "identity": {"docker-reference": f"{self.host}/{name}"},
                    "image": {"docker-manifest-digest": digest},
                    "type": "cosign container image signature",
                },
                "optional": None,
            }
        )
        layer = self.push_blob(name, payload)
        config = self.push_blob(name, b"{}")
        signature = base64.b64encode(self.signing_key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, **config},
            "layers": [
                {
                    "mediaType": COSIGN_SIMPLESIGNING,
                    **layer,
                    "annotations": {COSIGN_SIGNATURE_ANNOTATION: signature},
                }
            ],
        }
        tag = digest.replace(":", "-") + ".sig"
        self.push_manifest(name, tag, manifest)
        return tag

    def push_referrer_signature(self, name: str, digest: str, subject_size: int) -> str:
        """A cosign v3 signature: a Sigstore bundle artifact whose `subject` is the image; as the registry
        has no referrers API, it is listed in the referrers tag schema index `sha256-<hex>`."""
        bundle = self.push_blob(name, canonical({"mediaType": SIGSTORE_BUNDLE, "messageSignature": {}}))
        empty = self.push_blob(name, b"{}")
        artifact = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": SIGSTORE_BUNDLE,
            "config": {"mediaType": OCI_EMPTY, **empty},
            "layers": [{"mediaType": SIGSTORE_BUNDLE, **bundle}],
            "subject": {"mediaType": OCI_INDEX, "digest": digest, "size": subject_size},
        }
        descriptor = self.push_manifest(name, digest_of(canonical(artifact)), artifact)
        referrers = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{**descriptor, "artifactType": SIGSTORE_BUNDLE}],
        }
        tag = digest.replace(":", "-")
        self.push_manifest(name, tag, referrers)
        return str(descriptor["digest"])

    def manifest_size(self, name: str, reference: str) -> int:
        response = self.session.head(
            f"{self.url}/v2/{name}/manifests/{reference}", headers={"Accept": OCI_INDEX}, timeout=HTTP_TIMEOUT
        )
        assert response.status_code == 200, response.status_code
        return int(response.headers["Content-Length"])


def registry_config(directory: Path, port: int, certificate: Certificate, htpasswd: Path) -> Path:
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(directory / "data")}},
        "http": {
            "addr": f"127.0.0.1:{port}",
            "secret": "roadbike-test-registry",
            "tls": {"certificate": str(certificate.cert), "key": str(certificate.key)},
        },
        "auth": {"htpasswd": {"realm": "roadbike-test", "path": str(htpasswd)}},
    }
    path = directory / "config.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.contextmanager
def registry_server(directory: Path) -> Iterator[Registry]:
    """The Debian `docker-registry` on 127.0.0.1 with TLS and htpasswd (bcrypt) auth."""
    binary = require_tool("docker-registry")
    directory.mkdir(parents=True, exist_ok=True)
    username, password = "roadbike-ci", "pushpull-" + hashlib.sha256(str(directory).encode()).hexdigest()[:16]
    htpasswd = directory / "htpasswd"
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    htpasswd.write_text(f"{username}:{hashed}\n")
    certificate = self_signed_certificate(directory)
    port = free_port()
    config = registry_config(directory, port, certificate, htpasswd)
    log = directory / "registry.log"
    with running([binary, "serve", str(config)], log) as process:
        registry = Registry(
            host=f"127.0.0.1:{port}",
            url=f"https://127.0.0.1:{port}",
            username=username,
            password=password,
            ca_bundle=certificate.cert,
        )
        wait_until(
            lambda: (
                requests.get(f"{registry.url}/v2/", verify=str(certificate.cert), timeout=1).status_code
                == 401
            ),
            "docker-registry",
            process,
            log,
        )
        try:
            yield registry
        finally:
            registry.session.close()


# --- Prometheus ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prometheus:
    url: str
    rule_files: tuple[Path, ...]


def _rules_evaluated(url: str, expected_groups: int) -> bool:
    response = requests.get(f"{url}/api/v1/rules", timeout=1)
    groups = response.json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    return len(groups) == expected_groups and bool(rules) and all(rule["health"] == "ok" for rule in rules)


@contextlib.contextmanager
def prometheus_server(
    directory: Path, rule_files: Sequence[Path], scrape_configs: Sequence[dict[str, Any]] = ()
) -> Iterator[Prometheus]:
    """The Debian `prometheus` evaluating `rule_files` every second (and scraping `scrape_configs`, on
    127.0.0.1 only); ready once every rule is healthy."""
    binary = require_tool("prometheus")
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"evaluation_interval": "1s", "scrape_interval": "15s"},
                "rule_files": [str(path) for path in rule_files],
                "scrape_configs": list(scrape_configs),
            }
        )
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    expected_groups = sum(len(yaml.safe_load(path.read_text())["groups"]) for path in rule_files)
    command = [
        binary,
        f"--config.file={config}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--storage.tsdb.path={directory / 'data'}",
        "--log.level=warn",
    ]
    log = directory / "prometheus.log"
    with running(command, log) as process:
        wait_until(lambda: _rules_evaluated(url, expected_groups), "prometheus", process, log)
        yield Prometheus(url=url, rule_files=tuple(rule_files))


# --- the probed service ----------------------------------------------------------------------------

HEALTHY_PATH = "/healthz"
SLOW_FAILING_PATH = "/slow"
FLAKY_PATH = "/flaky"
SLOW_SECONDS = 0.35


class _ProbedService(BaseHTTPRequestHandler):
    server: _ServiceServer

    def do_GET(self) -> None:
        if self.path == HEALTHY_PATH:
            self._answer(200, b"ok\n")
        elif self.path.startswith(SLOW_FAILING_PATH):
            count = self.server.count(self.path)
            time.sleep(SLOW_SECONDS)
            self._answer(503 if count % 4 == 0 else 200, b"slow\n")
        elif self.path.startswith(FLAKY_PATH):
            count = self.server.count(self.path)
            self._answer(503 if count <= 2 else 200, b"flaky\n")
        else:
            self._answer(404, b"not found\n")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


class _ServiceServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _ProbedService)
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a probe or request timeout) closes early; that is expected here."""

    def count(self, path: str) -> int:
        with self._lock:
            self._counts[path] = self._counts.get(path, 0) + 1
            return self._counts[path]


@dataclass(frozen=True)
class Service:
    url: str

    def endpoint(self, path: str) -> str:
        return f"{self.url}{path}"


@contextlib.contextmanager
def probed_service() -> Iterator[Service]:
    """A threaded HTTP service: `/healthz` fast and healthy; `/slow...` slow with one 503 in four per path;
    `/flaky...` 503 twice per path, then 200 (for retries)."""
    server = _ServiceServer(("127.0.0.1", 0))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield Service(url=f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# --- an OCI 1.1 registry with token auth ------------------------------------------------------------
# distribution 2.8 has neither the referrers API nor (as configured above) Bearer-token auth, which
# GHCR, Harbor or zot use; this small in-memory registry serves both so those paths are tested too.


@dataclass
class TokenRegistry:
    host: str
    url: str
    username: str
    password: str
    manifests: dict[tuple[str, str], tuple[str, bytes]] = field(default_factory=dict)
    token_requests: list[str] = field(default_factory=list)
    # (name, reference) -> the Docker-Content-Digest to name instead of the content's own (a tampering proxy)
    named_digests: dict[tuple[str, str], str] = field(default_factory=dict)

    def put(self, name: str, document: dict[str, Any], tag: str | None = None) -> dict[str, Any]:
        content = canonical(document)
        digest = digest_of(content)
        for reference in (digest, tag) if tag else (digest,):
            self.manifests[(name, reference)] = (document["mediaType"], content)
        return {"mediaType": document["mediaType"], "digest": digest, "size": len(content)}

    def put_image(self, name: str, tag: str, platforms: Sequence[str]) -> dict[str, Any]:
        manifests = []
        for platform in platforms:
            os_name, arch = platform.split("/")
            manifest = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {},
                "layers": [],
                "arch": arch,
            }
            manifests.append({**self.put(name, manifest), "platform": {"os": os_name, "architecture": arch}})
        return self.put(name, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}, tag)

    def put_bundle_signature(self, name: str, subject: dict[str, Any]) -> str:
        artifact = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": SIGSTORE_BUNDLE,
            "config": {"mediaType": OCI_EMPTY, "digest": digest_of(b"{}"), "size": 2},
            "layers": [{"mediaType": SIGSTORE_BUNDLE, "digest": digest_of(b"bundle"), "size": 6}],
            "subject": subject,
        }
        return str(self.put(name, artifact)["digest"])

    def referrers(self, name: str, digest: str) -> dict[str, Any]:
        found = []
        for (repository, reference), (media_type, content) in sorted(self.manifests.items()):
            document = json.loads(content)
            if (
                repository == name
                and reference.startswith("sha256:")
                and document.get("subject", {}).get("digest") == digest
            ):
                found.append(
                    {
                        "mediaType": media_type,
                        "digest": reference,
                        "size": len(content),
                        "artifactType": document["artifactType"],
                    }
                )
        return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": found}


class _TokenRegistryHandler(BaseHTTPRequestHandler):
    server: _TokenRegistryServer

    def do_HEAD(self) -> None:
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:
        registry = self.server.registry
        path = self.path.split("?", 1)[0]
        if path == "/token":
            self._token(registry)
            return
        parts = path.removeprefix("/v2/").split("/")
        name = "/".join(parts[:-2]) if len(parts) >= 3 else ""
        scope = f"repository:{name}:pull" if name else ""
        if not self._authorized(scope):
            challenge = f'Bearer realm="{registry.url}/token",service="token-registry"'
            self._send(
                401,
                b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                {"WWW-Authenticate": challenge + (f',scope="{scope}"' if scope else "")},
            )
        elif path == "/v2/":
            self._send(200, b"{}")
        elif len(parts) >= 3 and parts[-2] == "manifests" and (name, parts[-1]) in registry.manifests:
            media_type, content = registry.manifests[(name, parts[-1])]
            named = registry.named_digests.get((name, parts[-1]), digest_of(content))
            self._send(200, content, {"Content-Type": media_type, "Docker-Content-Digest": named}, head)
        elif len(parts) >= 3 and parts[-2] == "referrers":
            self._send(200, canonical(registry.referrers(name, parts[-1])), {"Content-Type": OCI_INDEX}, head)
        else:
            self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', {}, head)

    def _token(self, registry: TokenRegistry) -> None:
        expected = "Basic " + base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            self._send(401, b"{}")
            return
        scope = parse_qs(urlsplit(self.path).query).get("scope", [""])[0]
        registry.token_requests.append(scope)
        self._send(200, json.dumps({"token": f"token-for-{scope}"}).encode())

    def _authorized(self, scope: str) -> bool:
        given = self.headers.get("Authorization", "")
        return given.startswith("Bearer token-for-") and (not scope or given == f"Bearer token-for-{scope}")

    def _send(
        self, status: int, body: bytes, headers: dict[str, str] | None = None, head: bool = False
    ) -> None:
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


class _TokenRegistryServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, registry_factory: Any) -> None:
        super().__init__(("127.0.0.1", 0), _TokenRegistryHandler)
        self.registry: TokenRegistry = registry_factory(self.server_address[1])


@contextlib.contextmanager
def token_registry() -> Iterator[TokenRegistry]:
    """An in-memory OCI 1.1 registry on 127.0.0.1 with Bearer-token auth and the referrers API."""

    def make(port: int) -> TokenRegistry:
        host = f"127.0.0.1:{port}"
        return TokenRegistry(
            host=host, url=f"http://{host}", username="robot", password="token-registry-secret"
        )

    server = _TokenRegistryServer(make)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield server.registry
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
