"""A small OCI distribution client: Basic or Bearer-token auth, manifests, blobs, referrers, tags.

Only what `roadbike verify` reads. Content fetched by digest is checked against that digest, a manifest
fetched by tag against the `Docker-Content-Digest` the registry names for it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from roadbike.transport import Transport

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
IMAGE_MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
ALL_MANIFEST_TYPES = (*INDEX_TYPES, *IMAGE_MANIFEST_TYPES)

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class RegistryError(Exception):
    """The registry answered, but not with what the distribution spec promises (bad JSON, wrong digest)."""


MAX_MANIFEST_BYTES = 4 << 20  # the distribution spec's limit a registry may enforce on manifests


def token_endpoint_problem(base_url: str, realm: str) -> str | None:
    """Why the registry's credentials must not go to a Bearer challenge's token endpoint, or None: only
    an https endpoint on the registry's own host gets them (or the registry's own origin, which has them
    already)."""
    registry, endpoint = urlsplit(base_url), urlsplit(realm)
    registry_host = (registry.hostname or "").lower()
    realm_host = (endpoint.hostname or "").lower()
    same_origin = (endpoint.scheme, realm_host, _port(endpoint)) == (
        registry.scheme,
        registry_host,
        _port(registry),
    )
    if endpoint.scheme != "https" and not same_origin:
        return (
            f"the registry's Bearer challenge names the token endpoint {_shown(realm)}, which is not https: "
            "no credentials were sent to it"
        )
    if realm_host != registry_host or endpoint.username is not None:
        return (
            f"the registry's Bearer challenge names the token endpoint {_shown(realm)} on "
            f"{realm_host or 'no host'}, not on the registry's host {registry_host}: no credentials were sent"
        )
    return None


def _shown(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if _port(parts) else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"[:200]


def _port(parts: Any) -> int | None:
    try:
        return parts.port
    except ValueError:
        return None


def sha256_digest(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


@dataclass(frozen=True)
class Challenge:
    scheme: str
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """`WWW-Authenticate: Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    return Challenge(scheme=scheme.lower(), params=dict(CHALLENGE_PARAM.findall(rest)))


@dataclass(frozen=True)
class Manifest:
    reference: str
    digest: str
    media_type: str
    document: dict[str, Any]

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    @property
    def descriptors(self) -> list[dict[str, Any]]:
        key = "manifests" if self.is_index else "layers"
        items = self.document.get(key)
        return [d for d in items if isinstance(d, dict)] if isinstance(items, list) else []


@dataclass(frozen=True)
class TagResolution:
    """What a tag points at: the manifest (its digest checked against the content) or the status why not."""

    tag: str
    status: int
    manifest: Manifest | None = None

    @property
    def digest(self) -> str | None:
        return self.manifest.digest if self.manifest else None

    def describe(self) -> str:
        if self.manifest is None:
            return f"tag {self.tag} not found ({self.status})"
        return f"tag {self.tag} -> {self.manifest.digest}"


@dataclass
class RegistryClient:
    """Talks to one registry (`base_url` like `https://registry.example:5000`) with its credentials."""

    transport: Transport
    base_url: str
    username: str | None = None
    password: str | None = None
    auth_scheme: str | None = None
    _tokens: dict[str, str] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"{self.base_url.rstrip('/')}{path}"

    def get(
        self,
        path: str,
        accept: tuple[str, ...] = (),
        scope: str = "",
        method: str = "GET",
        max_body: int = MAX_MANIFEST_BYTES,
    ) -> requests.Response:
        """One authenticated request: answers a 401 challenge once (Basic, or a Bearer token for `scope`)."""
        headers = {"Accept": ", ".join(accept)} if accept else {}
        response = self._send(method, path, headers, scope, max_body)
        if response.status_code != 401 or self.username is None:
            return response
        challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if challenge is None:
            return response
        self.auth_scheme = challenge.scheme
        if challenge.scheme == "bearer":
            token = self._token(challenge, scope)
            if token is None:
                return response
            self._tokens[scope] = token
        return self._send(method, path, headers, scope, max_body)

    def _send(
        self, method: str, path: str, headers: dict[str, str], scope: str, max_body: int = 4 << 20
    ) -> requests.Response:
        auth = None
        if self.auth_scheme == "basic" and self.username is not None:
            auth = (self.username, self.password or "")
        elif self.auth_scheme == "bearer" and scope in self._tokens:
            headers = {**headers, "Authorization": f"Bearer {self._tokens[scope]}"}
        return self.transport.request(method, self.url(path), headers=headers, auth=auth, max_body=max_body)

    def _token(self, challenge: Challenge, scope: str) -> str | None:
        realm = challenge.params.get("realm")
        if not realm:
            return None
        refused = token_endpoint_problem(self.base_url, realm)
        if refused:
            raise RegistryError(refused)
        params = {k: v for k, v in challenge.params.items() if k in ("service", "scope")}
        if scope:
            params["scope"] = scope
        response = self.transport.request(
            "GET", realm, params=params, auth=(self.username or "", self.password or ""), max_body=1 << 20
        )
        if response.status_code != 200:
            return None
        try:
            body = response.json()
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        token = body.get("token") or body.get("access_token")
        return token if isinstance(token, str) else None

    def ping(self) -> requests.Response:
        return self.get("/v2/")

    def manifest(
        self, name: str, reference: str, accept: tuple[str, ...] = ALL_MANIFEST_TYPES
    ) -> Manifest | None:
        """The manifest at a tag or digest, None when the registry has none (404)."""
        response = self.get(f"/v2/{name}/manifests/{quote(reference, safe=':')}", accept, _pull(name))
        if response.status_code == 404:
            return None
        _expect_ok(response)
        return _manifest(name, reference, response, reference if DIGEST.match(reference) else None)

    def resolve_tag(self, name: str, tag: str) -> TagResolution:
        """GET the manifest a tag points at; its content must hash to the `Docker-Content-Digest` named."""
        response = self.get(f"/v2/{name}/manifests/{quote(tag)}", ALL_MANIFEST_TYPES, _pull(name))
        if response.status_code == 404:
            return TagResolution(tag=tag, status=404)
        _expect_ok(response)
        named = response.headers.get("Docker-Content-Digest") or None
        return TagResolution(tag=tag, status=200, manifest=_manifest(name, tag, response, named))

    def manifest_status(self, name: str, reference: str) -> tuple[int, str | None]:
        """HEAD a manifest: the status and the `Docker-Content-Digest` it names."""
        response = self.get(
            f"/v2/{name}/manifests/{quote(reference, safe=':')}", ALL_MANIFEST_TYPES, _pull(name), "HEAD"
        )
        digest = response.headers.get("Docker-Content-Digest")
        if response.status_code == 200 and not digest:  # the header is optional: hash the content
            manifest = self.manifest(name, reference)
            digest = manifest.digest if manifest else None
        return response.status_code, digest

    def blob(self, name: str, digest: str, max_bytes: int = 1 << 20) -> bytes:
        response = self.get(f"/v2/{name}/blobs/{digest}", (), _pull(name), max_body=max_bytes + 1)
        _expect_ok(response)
        content = response.content[: max_bytes + 1]
        if len(content) > max_bytes:
            raise RegistryError(f"blob {name}@{digest} is larger than {max_bytes} bytes")
        if sha256_digest(content) != digest:
            raise RegistryError(f"blob {name}@{digest} has content digest {sha256_digest(content)}")
        return content

    def referrers(self, name: str, digest: str) -> tuple[int, list[dict[str, Any]]]:
        """The OCI 1.1 referrers API: (status, descriptors); a 404 means the registry does not implement it."""
        response = self.get(f"/v2/{name}/referrers/{digest}", (OCI_INDEX,), _pull(name))
        if response.status_code != 200:
            return response.status_code, []
        document = _json_object(response.content, f"referrers of {name}@{digest}")
        items = document.get("manifests")
        return 200, [d for d in items if isinstance(d, dict)] if isinstance(items, list) else []

    def tags(self, name: str) -> list[str]:
        response = self.get(f"/v2/{name}/tags/list", (), _pull(name))
        if response.status_code == 404:
            return []
        _expect_ok(response)
        tags = _json_object(response.content, f"tags of {name}").get("tags")
        return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def _pull(name: str) -> str:
    return f"repository:{name}:pull"


def _manifest(name: str, reference: str, response: requests.Response, expected: str | None) -> Manifest:
    """A manifest answer; its digest is the hash of the content as served, and must be `expected` if given."""
    content = response.content
    digest = sha256_digest(content)
    shown = f"{name}{'@' if DIGEST.match(reference) else ':'}{reference}"
    if expected is not None and digest != expected:
        raise RegistryError(f"manifest {shown} has content digest {digest}, not {expected}")
    document = _json_object(content, f"manifest {shown}")
    media_type = document.get("mediaType") or response.headers.get("Content-Type", "").split(";")[0]
    return Manifest(reference=reference, digest=digest, media_type=str(media_type), document=document)


def _expect_ok(response: requests.Response) -> None:
    if response.status_code != 200:
        raise RegistryError(f"{response.request.method} {response.url}: {response.status_code}")


def _json_object(content: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(content)
    except ValueError:
        raise RegistryError(f"{what} is not JSON") from None
    if not isinstance(document, dict):
        raise RegistryError(f"{what} is not a JSON object")
    return document
