"""The release's image path without a Docker engine: the example Go service cross-compiled for linux/amd64
and linux/arm64 (no QEMU), each image pushed by digest with crane (go-containerregistry, `make go-tools`)
to the real registry (Debian docker-registry, htpasswd and TLS), then the index tagged with the version;
`roadbike verify`'s images check passes on it and fails, naming the platform, when arm64 is missing."""

from __future__ import annotations

import io
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.github.steps import COSIGN_STORAGE_FLAGS
from components.signing.keys import generate_key_pair
from roadbike.stack_outputs import VerifyOptions
from roadbike.verify import verify
from tests.helpers import REPO, image_layer, require_go_tool, require_tool
from tests.live import Registry, registry_server

EXAMPLE = REPO / "examples" / "go-http-server"
SERVICE = "go-http-server"
REPOSITORY = f"acme/{SERVICE}"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with registry_server(tmp_path_factory.mktemp("registry")) as server:
        yield server


class Crane:
    def __init__(self, registry: Registry, directory: Path) -> None:
        self.binary = require_go_tool("crane")
        self.password = registry.password
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(directory),
            "DOCKER_CONFIG": str(directory / "docker"),
            "SSL_CERT_FILE": str(registry.ca_bundle),
        }
        login = [self.binary, "auth", "login", registry.host, "-u", registry.username, "--password-stdin"]
        subprocess.run(
            login, input=registry.password, env=self.env, check=True, capture_output=True, text=True
        )

    def __call__(self, *args: str) -> str:
        result = subprocess.run(
            [self.binary, *args], env=self.env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, f"crane {' '.join(args)}: {result.stderr}"
        assert self.password not in result.stdout + result.stderr, "the registry password in crane's output"
        return result.stdout.strip()


def build_and_push(crane: Crane, registry: Registry, directory: Path, platform: str) -> str:
    """The platform's image, pushed by digest; its `repository@digest`."""
    goos, goarch = platform.split("/")
    binary = directory / f"{SERVICE}-{goos}-{goarch}"
    subprocess.run(
        [
            require_tool("go"),
            "build",
            "-trimpath",
            "-ldflags",
            "-s -w -X main.version=1.4.2",
            "-o",
            str(binary),
            ".",
        ],
        cwd=EXAMPLE,
        env={**os.environ, "CGO_ENABLED": "0", "GOOS": goos, "GOARCH": goarch},
        check=True,
        capture_output=True,
        timeout=900,
    )
    staging = f"{registry.host}/{REPOSITORY}:build-{goarch}"
    crane("append", "--oci-empty-base", "-f", str(image_layer(binary, SERVICE)), "-t", staging)
    pushed = crane("mutate", staging, "--set-platform", platform, "--entrypoint", f"/{SERVICE}")
    assert pushed.startswith(f"{registry.host}/{REPOSITORY}@sha256:"), pushed
    return pushed


@pytest.fixture(scope="module")
def images(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("images")
    crane = Crane(registry, directory)
    refs = {p: build_and_push(crane, registry, directory, p) for p in ("linux/amd64", "linux/arm64")}
    index = f"{registry.host}/{REPOSITORY}"
    crane("index", "append", "-m", refs["linux/amd64"], "-m", refs["linux/arm64"], "-t", f"{index}:1.4.2")
    crane("index", "append", "-m", refs["linux/amd64"], "-t", f"{index}:1.4.3-amd64-only")
    return {
        **refs,
        "index": crane("digest", f"{index}:1.4.2"),
        "manifest": crane("manifest", f"{index}:1.4.2"),
        "config-arm64": crane("config", refs["linux/arm64"]),
    }


def verify_images(
    tmp_path: Path, registry: Registry, tag: str, check: str = "images", public_key: str = "-"
) -> dict[str, Any]:
    outputs = {
        "environment": "dev",
        "namespace": "delivery-dev",
        "registry": {
            "host": registry.host,
            "url": registry.url,
            "username": registry.username,
            "password": registry.password,
            "pullSecret": "registry-pull",
        },
        "services": {
            SERVICE: {
                "repository": REPOSITORY,
                "namespace": "delivery-dev",
                "version": "1.4.2",
                "platforms": ["linux/amd64", "linux/arm64"],
                "image": {"repository": f"{registry.host}/{REPOSITORY}", "tag": tag},
                "signing": {"mode": "keypair", "publicKey": public_key},
                "slo": {"ruleGroups": [], "pageAlerts": [], "ticketAlerts": []},
            }
        },
    }
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))
    out, err = io.StringIO(), io.StringIO()
    options = VerifyOptions(outputs=path, only=(check,), ca_bundle=registry.ca_bundle, timeout=30)
    code = verify(options, out, err, as_json=True)
    [result] = json.loads(out.getvalue())["checks"]
    return {"code": code, **result}


def test_the_index_lists_both_native_platform_images(images: dict[str, str]) -> None:
    index = json.loads(images["manifest"])
    platforms = {
        f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"] for m in index["manifests"]
    }
    assert platforms == {p: images[p].split("@")[1] for p in ("linux/amd64", "linux/arm64")}
    config = json.loads(images["config-arm64"])
    assert (config["os"], config["architecture"]) == ("linux", "arm64")
    assert config["config"]["Entrypoint"] == [f"/{SERVICE}"]


def test_verify_images_passes_on_the_pushed_index(
    tmp_path: Path, registry: Registry, images: dict[str, str]
) -> None:
    result = verify_images(tmp_path, registry, "1.4.2")
    assert result["code"] == 0 and result["passed"] is True, result
    assert images["index"] in result["message"], result["message"]


def test_verify_images_fails_naming_the_missing_arm64_image(
    tmp_path: Path, registry: Registry, images: dict[str, str]
) -> None:
    result = verify_images(tmp_path, registry, "1.4.3-amd64-only")
    assert result["code"] == 1 and result["passed"] is False, result
    assert "lacks linux/arm64" in result["message"], result["message"]


# --- signing: the real cosign CLI with a key pair made by roadbike's own key code -------------------


@pytest.fixture(scope="module")
def signed(
    registry: Registry, images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("cosign")
    password = "cosign-" + os.urandom(8).hex()
    pair = generate_key_pair(password.encode())
    other = generate_key_pair(b"another-service")
    (directory / "cosign.pub").write_text(pair.public_key_pem)
    (directory / "other.pub").write_text(other.public_key_pem)
    crane = Crane(registry, directory)
    index = f"{registry.host}/{REPOSITORY}"
    # the tag moved to an index nobody signed
    unsigned = crane("digest", f"{index}:1.4.3-amd64-only")
    crane("tag", f"{index}@{unsigned}", "1.4.2-moved")
    env = {**crane.env, "COSIGN_PASSWORD": password, "COSIGN_PRIVATE_KEY": pair.private_key_pem}
    sign = subprocess.run(
        [
            require_go_tool("cosign"),
            "sign",
            "--yes",
            *COSIGN_STORAGE_FLAGS.split(),
            "--tlog-upload=false",  # no Rekor here
            "--key",
            "env://COSIGN_PRIVATE_KEY",
            f"{index}@{images['index']}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert sign.returncode == 0, sign.stderr
    assert password not in sign.stdout + sign.stderr
    return {
        "env": crane.env,
        "dir": directory,
        "index": index,
        "publicKey": pair.public_key_pem,
        "otherPublicKey": other.public_key_pem,
    }


def cosign_verify(signed: dict[str, Any], key: str, reference: str) -> subprocess.CompletedProcess[str]:
    command = [require_go_tool("cosign"), "verify", "--key", str(signed["dir"] / key)]
    command += ["--insecure-ignore-tlog=true", "--new-bundle-format=false", reference]
    return subprocess.run(command, env=signed["env"], capture_output=True, text=True, timeout=300)


def test_cosign_verify_passes_with_the_stacks_public_key(
    signed: dict[str, Any], images: dict[str, str]
) -> None:
    result = cosign_verify(signed, "cosign.pub", f"{signed['index']}:1.4.2")
    assert result.returncode == 0, result.stderr
    [claim] = json.loads(result.stdout)
    assert claim["critical"]["image"]["docker-manifest-digest"] == images["index"]


def test_cosign_verify_fails_with_another_services_key(signed: dict[str, Any]) -> None:
    result = cosign_verify(signed, "other.pub", f"{signed['index']}:1.4.2")
    assert result.returncode != 0
    assert "no matching signatures" in result.stderr, result.stderr


def test_verify_signatures_passes_and_fails_when_the_tag_moves_to_an_unsigned_digest(
    tmp_path: Path, registry: Registry, signed: dict[str, Any]
) -> None:
    good = verify_images(tmp_path, registry, "1.4.2", check="signatures", public_key=signed["publicKey"])
    assert good["code"] == 0 and good["passed"] is True, good
    assert good["message"].endswith("verified with the service's publicKey"), good["message"]
    moved = verify_images(
        tmp_path, registry, "1.4.2-moved", check="signatures", public_key=signed["publicKey"]
    )
    assert moved["code"] == 1 and moved["passed"] is False, moved
    assert "no cosign signature for" in moved["message"], moved["message"]


def test_verify_signatures_fails_when_the_public_key_is_another_services(
    tmp_path: Path, registry: Registry, signed: dict[str, Any]
) -> None:
    """The signature cosign made is checked with the outputs' publicKey, as `cosign verify --key` does."""
    other = verify_images(
        tmp_path, registry, "1.4.2", check="signatures", public_key=signed["otherPublicKey"]
    )
    assert other["code"] == 1 and other["passed"] is False, other
    assert "does not verify with the service's publicKey" in other["message"], other["message"]
