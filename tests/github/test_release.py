"""The generated release-dev.yml run whole on the example Go service through the harness, against the real
registry (Debian docker-registry, htpasswd and TLS): tag, race tests and coverage, static binaries, one
image job per platform (crane as the image build action's local equivalent, pushed by digest), then the
publish job's own steps: the index tagged with the version, signed and its SBOM (syft, SPDX JSON)
attested by the real cosign with a key pair made by roadbike's key code, and build-metadata.json, whose
every field is checked against the facts of the build (`go version -m`, sha256, the registry's digest)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from components.github.release_workflow import (
    RELEASE_BINARIES,
    RELEASE_PUBLISH,
    RELEASE_TAG,
    RELEASE_TEST,
    image_job_name,
    release_workflow_path,
)
from components.github.steps import (
    METADATA_FILE,
    SBOM_FILE,
    SECRET_COSIGN_PASSWORD,
    SECRET_COSIGN_PRIVATE_KEY,
    SECRET_REGISTRY_PASSWORD,
    VAR_REGISTRY_USERNAME,
)
from components.signing.keys import generate_key_pair
from tests.github.harness import RUNNER_TOOLS, HarnessError, WorkflowRun
from tests.github.test_pipeline import (
    COMMIT,
    EXAMPLE,
    SERVICE,
    check_binaries,
    go_version_m,
    new_run,
    synthetic,
    workflow,
)
from tests.helpers import parse, require_go_tool, require_tool, stack_raw
from tests.images.test_image_path import verify_images
from tests.live import Registry, registry_server

VERSION = "1.4.2"
PLATFORMS = ("linux/amd64", "linux/arm64")


@dataclass
class Release:
    run: WorkflowRun
    registry: Registry
    repository: str
    keys: Path
    env: dict[str, str]
    secrets: tuple[str, ...]

    def tool(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [require_go_tool(name), *args], env=self.env, capture_output=True, text=True, timeout=300
        )

    def crane(self, *args: str) -> str:
        result = self.tool("crane", *args)
        assert result.returncode == 0, f"crane {' '.join(args)}: {result.stderr}"
        return result.stdout.strip()

    def cosign(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.tool("cosign", *args, "--insecure-ignore-tlog=true", "--new-bundle-format=false")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with registry_server(tmp_path_factory.mktemp("registry")) as server:
        yield server


@pytest.fixture(scope="module")
def release(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Release:
    for tool in ("crane", "cosign", "syft"):
        require_go_tool(tool)
    require_tool("jq")
    raw = stack_raw("dev")
    raw["registry"]["host"] = registry.host  # the dev stack's release workflow, pushing to this registry
    raw.pop("delivery", None)  # the release's own jobs; the delivery report's steps are tests/delivery's
    document = workflow(release_workflow_path(parse(raw)), parse(raw))
    root = tmp_path_factory.mktemp("release")
    keys = root / "keys"
    keys.mkdir()
    password = "cosign-" + os.urandom(8).hex()
    pair = generate_key_pair(password.encode())
    (keys / "cosign.pub").write_text(pair.public_key_pem)
    (keys / "other.pub").write_text(generate_key_pair(b"another-service").public_key_pem)
    env = {
        "DOCKER_CONFIG": str(root / "docker"),  # docker/login-action's local equivalent logs in here
        "SSL_CERT_FILE": str(registry.ca_bundle),  # the registry's self-signed CA
        "COSIGN_TLOG_UPLOAD": "false",  # cosign's --tlog-upload: no Rekor here
    }
    run = new_run(
        document,
        root / "run",
        f"refs/tags/v{VERSION}",
        secrets={
            SECRET_REGISTRY_PASSWORD: registry.password,
            SECRET_COSIGN_PRIVATE_KEY: pair.private_key_pem,
            SECRET_COSIGN_PASSWORD: password,
        },
        vars={VAR_REGISTRY_USERNAME: registry.username},
        env=env,
    )
    run.path = [RUNNER_TOOLS, *run.path]
    run.run_jobs()
    tool_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root), **env}
    private = pair.private_key_pem.splitlines()[1]  # a line of the encrypted key's body
    return Release(
        run=run,
        registry=registry,
        repository=f"{registry.host}/acme/{SERVICE}",
        keys=keys,
        env=tool_env,
        secrets=(registry.password, password, private),
    )


def index_digest(release: Release) -> str:
    return release.crane("digest", f"{release.repository}:{VERSION}")


# --- tag, tests, binaries --------------------------------------------------------------------------


def test_release_tag_test_and_binaries_jobs(release: Release) -> None:
    run = release.run
    assert run.job_outputs[RELEASE_TAG] == {"version": VERSION}
    assert float(run.job_outputs[RELEASE_TEST]["coverage"]) > 80
    sizes = check_binaries(run.artifacts / "binaries", VERSION)
    checksums = json.loads(run.job_outputs[RELEASE_BINARIES]["checksums"])
    assert set(checksums) == set(sizes)
    check = subprocess.run(
        ["sha256sum", "--check", "--strict", "SHA256SUMS"],
        cwd=run.artifacts / "binaries",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr


# --- images ----------------------------------------------------------------------------------------


def test_each_platform_is_pushed_by_digest_and_the_index_tagged_with_the_version(release: Release) -> None:
    run, repository = release.run, release.repository
    digests = {p: run.job_outputs[image_job_name(p)]["digest"] for p in PLATFORMS}
    index = json.loads(release.crane("manifest", f"{repository}:{VERSION}"))
    listed = {
        f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"] for m in index["manifests"]
    }
    assert listed == digests
    digest = index_digest(release)
    assert run.job_outputs[RELEASE_PUBLISH] == {"digest": digest}
    provenance = run.logs[(RELEASE_PUBLISH, "Attest build provenance")]
    assert f"not reproduced here (GitHub OIDC and attestation API): {repository}@{digest}" in provenance
    # by digest: the version, the signature and the attestation are the repository's only tags
    tags = set(release.crane("ls", repository).split())
    assert tags == {VERSION, f"{digest.replace(':', '-')}.sig", f"{digest.replace(':', '-')}.att"}, tags
    for platform in PLATFORMS:
        config = json.loads(release.crane("config", f"{repository}@{digests[platform]}"))
        assert f"{config['os']}/{config['architecture']}" == platform
        assert config["config"]["Entrypoint"] == [f"/{SERVICE}"]
        assert config["config"]["Labels"] == {
            "org.opencontainers.image.source": f"https://github.com/acme/{SERVICE}",
            "org.opencontainers.image.version": VERSION,
            "org.opencontainers.image.revision": COMMIT,
        }


def image_binary(release: Release, platform: str, directory: Path) -> Path:
    """The service binary of the platform's image, read from its one layer in the registry."""
    digest = release.run.job_outputs[image_job_name(platform)]["digest"]
    manifest = json.loads(release.crane("manifest", f"{release.repository}@{digest}"))
    [layer] = manifest["layers"]
    blob = subprocess.run(
        [require_go_tool("crane"), "blob", f"{release.repository}@{layer['digest']}"],
        env=release.env,
        capture_output=True,
        timeout=300,
        check=True,
    ).stdout
    assert "sha256:" + hashlib.sha256(blob).hexdigest() == layer["digest"]
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        member = tar.getmember(SERVICE)
        assert member.mode == 0o755 and member.uid == 0
        content = tar.extractfile(member)
        assert content is not None
        path = directory / f"{SERVICE}-{platform.replace('/', '-')}"
        path.write_bytes(content.read())
    return path


def test_each_images_binary_is_the_static_build_for_its_platform_with_version_and_commit(
    release: Release, tmp_path: Path
) -> None:
    for platform in PLATFORMS:
        binary = image_binary(release, platform, tmp_path)
        settings = go_version_m(binary)
        assert f"{settings['GOOS']}/{settings['GOARCH']}" == platform, settings
        assert settings["CGO_ENABLED"] == "0" and settings["-trimpath"] == "true", settings
        content = binary.read_bytes()
        assert f"main.version={VERSION}".encode() not in content  # -X set the value, not a flag string
        assert VERSION.encode() in content and COMMIT.encode() in content, binary.name


# --- signature, SBOM, attestation --------------------------------------------------------------------


def test_cosign_verify_passes_on_the_index_the_workflow_signed(release: Release) -> None:
    result = release.cosign(
        "verify", "--key", str(release.keys / "cosign.pub"), f"{release.repository}:{VERSION}"
    )
    assert result.returncode == 0, result.stderr
    [claim] = json.loads(result.stdout)
    assert claim["critical"]["image"]["docker-manifest-digest"] == index_digest(release)


def sbom(release: Release) -> dict[str, Any]:
    return dict(json.loads((release.run.artifacts / "build-metadata" / SBOM_FILE).read_text()))


def required_modules() -> dict[str, str]:
    go_mod = (EXAMPLE / "go.mod").read_text()
    return dict(re.findall(r"^\s*(?:require\s+)?([a-z0-9.\-]+\.[a-z]+/\S+) (v\S+)", go_mod, re.M))


def test_syft_sbom_of_the_pushed_image_lists_the_services_go_modules(release: Release) -> None:
    document = sbom(release)
    assert document["spdxVersion"] == "SPDX-2.3", document.get("spdxVersion")
    assert document["name"].startswith(release.repository), document["name"]
    assert re.search(r"syft-1\.57\.1$", " ".join(document["creationInfo"]["creators"])), document[
        "creationInfo"
    ]
    packages = {p["name"]: p.get("versionInfo") for p in document["packages"]}
    # syft resolves the index to this machine's platform (linux/amd64): the image is the SBOM's root
    assert packages[release.repository] == index_digest(release)
    modules = required_modules()
    assert modules["github.com/prometheus/client_golang"] == "v1.23.2"
    # every module linked into the binary, at the version go.sum pins (x/kr/text is a test-only module)
    linked = {name: version for name, version in modules.items() if name != "github.com/kr/text"}
    assert {name: packages.get(name) for name in linked} == linked
    assert packages.get("stdlib") == "go" + go_version_m_go(release)


def go_version_m_go(release: Release) -> str:
    binary = release.run.artifacts / "binaries" / f"{SERVICE}-linux-amd64"
    first = subprocess.run(
        [require_tool("go"), "version", str(binary)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return first.split(": go", 1)[1].strip()


def verify_attestation(release: Release, key: str) -> subprocess.CompletedProcess[str]:
    return release.cosign(
        "verify-attestation",
        "--key",
        str(release.keys / key),
        "--type",
        "spdxjson",
        f"{release.repository}:{VERSION}",
    )


def test_cosign_verify_attestation_passes_with_the_stacks_key_on_the_syft_sbom(release: Release) -> None:
    result = verify_attestation(release, "cosign.pub")
    assert result.returncode == 0, result.stderr
    [envelope] = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["predicateType"] == "https://spdx.dev/Document"
    [subject] = statement["subject"]
    assert "sha256:" + subject["digest"]["sha256"] == index_digest(release)
    assert statement["predicate"] == sbom(release)


def test_cosign_verify_attestation_fails_with_another_services_key(release: Release) -> None:
    result = verify_attestation(release, "other.pub")
    assert result.returncode != 0
    assert "no matching attestations" in result.stderr, result.stderr


def test_roadbike_verify_passes_on_the_release_the_workflow_published(
    release: Release, tmp_path: Path
) -> None:
    digest = index_digest(release)
    public_key = (release.keys / "cosign.pub").read_text()
    for check in ("images", "signatures"):
        result = verify_images(tmp_path, release.registry, VERSION, check=check, public_key=public_key)
        assert result["code"] == 0 and result["passed"] is True, result
        assert digest in result["message"], result["message"]
    assert result["message"].endswith("verified with the service's publicKey"), result["message"]


# --- build-metadata.json -----------------------------------------------------------------------------


def coverage_percent(profile: Path) -> str:
    """Covered statements over all statements of a `go test -coverprofile` file, as `go tool cover` rounds."""
    blocks: dict[str, tuple[int, int]] = {}
    for line in profile.read_text().splitlines()[1:]:
        block, statements, count = line.rsplit(" ", 2)
        seen = blocks.get(block, (0, 0))[1]
        blocks[block] = (int(statements), max(seen, int(count)))
    total = sum(statements for statements, _ in blocks.values())
    covered = sum(statements for statements, count in blocks.values() if count > 0)
    return f"{100 * covered / total:.1f}"


def test_build_metadata_matches_the_facts_of_the_build(release: Release) -> None:
    run = release.run
    metadata = json.loads((run.artifacts / "build-metadata" / METADATA_FILE).read_text())
    binaries = run.artifacts / "binaries"
    assert metadata == {
        "commit_sha": COMMIT,
        "build_id": "4242.1",
        "go_version": "go" + go_version_m_go(release),
        "binary_checksums": {
            path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(binaries.glob(f"{SERVICE}-*"))
        },
        "test_coverage_percent": float(coverage_percent(run.workspace(RELEASE_TEST) / "coverage.out")),
        "version": VERSION,
        "image": f"{release.repository}@{index_digest(release)}",
    }
    assert len(metadata["binary_checksums"]) == 2
    assert json.dumps(metadata, indent=2) in run.summaries[RELEASE_PUBLISH]


def test_no_secret_reaches_a_log_a_summary_or_an_artifact(release: Release) -> None:
    texts = [*release.run.logs.values(), *release.run.summaries.values()]
    texts += [p.read_text(errors="replace") for p in release.run.artifacts.rglob("*.json")]
    for secret in release.secrets:
        assert not [text for text in texts if secret in text]


# --- the harness's image equivalents fail loudly -----------------------------------------------------


def test_the_runner_tools_docker_refuses_what_it_does_not_provide(tmp_path: Path) -> None:
    document = synthetic([{"name": "Build with docker", "run": "docker build ."}])
    run = new_run(document, tmp_path, "refs/heads/main")
    run.path = [RUNNER_TOOLS, *run.path]
    with pytest.raises(HarnessError) as failed:
        run.run_jobs()
    message = str(failed.value)
    assert message.startswith("job only, step 'Build with docker': exit 2:"), message
    assert "only 'buildx imagetools create --tag REF SOURCE...'" in message, message


def test_the_image_build_equivalent_refuses_an_input_it_does_not_honour(tmp_path: Path) -> None:
    step = {
        "name": "Build",
        "uses": "docker/build-push-action@x",
        "with": {"context": ".", "file": "Dockerfile.dev"},
    }
    with pytest.raises(
        HarnessError, match=r"^job only, step 'Build': docker/build-push-action: input file has no"
    ):
        new_run(synthetic([step]), tmp_path, "refs/heads/main").run_jobs()
