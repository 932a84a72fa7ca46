"""`roadbike verify` against hostile servers on 127.0.0.1: credentials only where they belong, one deadline
per check whatever the server does, bodies read in bounded chunks."""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from roadbike.oci import token_endpoint_problem
from roadbike.stack_outputs import VerifyOptions
from roadbike.verify import verify

Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextlib.contextmanager
def serve(handle: Handler, host: str = "127.0.0.1") -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A server answering every GET/HEAD with `handle`; yields its origin and the requests' headers."""
    seen: list[dict[str, str]] = []

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            with contextlib.suppress(OSError):
                handle(self)

        do_HEAD = do_GET

    server = _Server((host, 0), H)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def run(tmp_path: Path, outputs: dict[str, Any], timeout: float, only: tuple[str, ...]) -> tuple[int, dict]:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))
    out, err = io.StringIO(), io.StringIO()
    code = verify(VerifyOptions(outputs=path, timeout=timeout, only=only), out, err, as_json=True)
    assert code != 2, err.getvalue()
    return code, json.loads(out.getvalue())


def registry_outputs(url: str) -> dict[str, Any]:
    host = url.removeprefix("http://")
    return {
        "registry": {"host": host, "url": url, "username": "robot", "password": "hunter2-registry"},
        "services": {"api": {"platforms": ["linux/amd64", "linux/arm64"]}},
    }


def test_a_bearer_challenge_naming_another_host_gets_no_credentials(tmp_path: Path) -> None:
    with serve(lambda h: _reply(h, 200, b'{"token": "t"}')) as (elsewhere, stolen):
        realm = elsewhere.replace("127.0.0.1", "localhost") + "/token"

        def registry(handler: http.server.BaseHTTPRequestHandler) -> None:
            _reply(handler, 401, b"{}", {"WWW-Authenticate": f'Bearer realm="{realm}",service="x"'})

        with serve(registry) as (url, _):
            code, document = run(tmp_path, registry_outputs(url), 10, ("registry",))
    assert code == 1
    [check] = document["checks"]
    assert "no credentials were sent" in check["message"], check
    assert stolen == []  # the token endpoint elsewhere was never asked, let alone with the password


def test_token_endpoints_only_on_the_registry_host_over_https() -> None:
    base = "https://registry.example:5000"
    assert token_endpoint_problem(base, "https://registry.example/token") is None
    assert token_endpoint_problem(base, "https://registry.example:5000/token") is None
    assert "not https" in (token_endpoint_problem(base, "http://registry.example/token") or "")
    assert "not on the registry's host" in (token_endpoint_problem(base, "https://evil.example/token") or "")
    assert token_endpoint_problem(base, "https://registry.example.evil.example/token")
    assert token_endpoint_problem(base, "https://u:p@registry.example/token")


def _reply(
    handler: http.server.BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    headers: dict[str, str] | None = None,
) -> None:
    handler.send_response(status)
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def _trickle(handler: http.server.BaseHTTPRequestHandler) -> None:
    """Headers one byte every 0.3 s: no socket read ever waits long enough to time out."""
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000:
        handler.wfile.write(bytes([byte]))
        handler.wfile.flush()
        time.sleep(0.3)


def test_a_trickling_server_is_bounded_by_the_checks_deadline(tmp_path: Path) -> None:
    with serve(_trickle) as (url, _):
        started = time.monotonic()
        code, document = run(tmp_path, registry_outputs(url), 2, ("registry",))
        took = time.monotonic() - started
    assert code == 1
    assert took < 4.5, f"verify took {took:.1f}s with --timeout 2"
    assert "total timeout of 2s" in document["checks"][0]["message"]


def test_a_huge_body_is_read_no_further_than_the_cap(tmp_path: Path) -> None:
    chunk = b"x" * (1 << 20)

    def huge(handler: http.server.BaseHTTPRequestHandler) -> None:
        if "/manifests/" not in handler.path:
            _reply(handler, 200, b"{}")
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "application/vnd.oci.image.index.v1+json")
        handler.send_header("Content-Length", str(1 << 31))
        handler.end_headers()
        for _ in range(2048):
            handler.wfile.write(chunk)

    with serve(huge) as (url, _):
        outputs = registry_outputs(url)
        host = url.removeprefix("http://")
        outputs["services"] = {
            "api": {
                "platforms": ["linux/amd64", "linux/arm64"],
                "image": {"repository": f"{host}/acme/api", "tag": "1.0.0"},
            }
        }
        started = time.monotonic()
        code, document = run(tmp_path, outputs, 20, ("images",))
        took = time.monotonic() - started
    assert code == 1
    assert "larger than" in document["checks"][0]["message"], document
    assert took < 10
