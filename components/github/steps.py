"""The building blocks of the generated workflows: pinned actions and tools, steps, jobs, shell scripts.

Every `uses:` comes from the one lock table `ACTIONS` (tag -> peeled commit SHA), every tool run by
`go run` or an action input is pinned in `TOOLS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from components.config import Service, StackConfig
from components.github.workflow_yaml import Commented
from components.naming import image_repository, registry_host

WORKFLOW_DIRECTORY = ".github/workflows/"


# action -> (full commit SHA of the tag, the tag). Refresh with `git ls-remote --tags` (peeled `^{}` lines).
ACTIONS: dict[str, tuple[str, str]] = {
    "actions/checkout": ("d23441a48e516b6c34aea4fa41551a30e30af803", "v6.1.0"),
    "actions/setup-go": ("924ae3a1cded613372ab5595356fb5720e22ba16", "v6.5.0"),
    "actions/upload-artifact": ("bbbca2ddaa5d8feaa63e36b76fdaad77386f024f", "v7.0.0"),
    "actions/attest-build-provenance": ("a2bbfa25375fe432b6a289bc6b6cd05ecd0c4c32", "v4.1.0"),
    "golangci/golangci-lint-action": ("ba0d7d2ec06a0ea1cb5fa41b2e4a3ab91d21278a", "v9.3.0"),
    "docker/setup-buildx-action": ("37fe631027851001ddb9b187196cc803df7f5f0e", "v4.3.0"),
    "docker/login-action": ("4907a6ddec9925e35a0a9e82d7399ccc52663121", "v4.1.0"),
    "docker/build-push-action": ("53b7df96c91f9c12dcc8a07bcb9ccacbed38856a", "v7.3.0"),
    "sigstore/cosign-installer": ("6f9f17788090df1f26f669e9d70d6ae9567deba6", "v4.1.2"),
    "anchore/sbom-action": ("e22c389904149dbc22b58101806040fa8d37a610", "v0.24.0"),
}


TOOLS: dict[str, str] = {
    "golangci-lint": "v2.15.0",
    "govulncheck": "golang.org/x/vuln/cmd/govulncheck@v1.9.0",
    "cosign": "v3.0.6",
    "syft": "v1.57.1",
}


READ_CONTENTS = {"contents": "read"}


# GitHub-hosted runners of each image architecture: every image is built natively, never under QEMU.
NATIVE_RUNNERS: dict[str, str] = {"linux/amd64": "ubuntu-24.04", "linux/arm64": "ubuntu-24.04-arm"}


DEFAULT_RUNNER = "ubuntu-24.04"


# The static binaries CI and release build (the seed pipeline's targets).
BINARY_TARGETS: tuple[str, ...] = ("linux/amd64", "darwin/arm64")


# The release jobs log in to the registry with these, from their environment; the registry host and the
# image repository are written into the workflow. The user name is a variable: as a secret, GitHub would
# mask it in every log line that names it.
VAR_REGISTRY_USERNAME = "REGISTRY_USERNAME"


SECRET_REGISTRY_PASSWORD = "REGISTRY_PASSWORD"


# Created by the signing component in the release environment (keypair mode).
SECRET_COSIGN_PRIVATE_KEY = "COSIGN_PRIVATE_KEY"


SECRET_COSIGN_PASSWORD = "COSIGN_PASSWORD"


# cosign v3 signs into OCI 1.1 referrers by default; the registries roadbike targets serve no referrers
# API, so signatures and attestations go to the `sha256-<digest>.sig`/`.att` tags every verifier reads.
COSIGN_STORAGE_FLAGS = "--new-bundle-format=false --use-signing-config=false"


SBOM_FILE = "sbom.spdx.json"


METADATA_FILE = "build-metadata.json"


def uses(action: str, with_: Mapping[str, Any] | None = None) -> dict[str, Any]:
    sha, version = ACTIONS[action]
    step: dict[str, Any] = {"uses": Commented(f"{action}@{sha}", version)}
    if with_:
        step["with"] = dict(with_)
    return step


def checkout_step() -> dict[str, Any]:
    return {"name": "Check out", **uses("actions/checkout", {"persist-credentials": False})}


def setup_go_step(service: Service, cache: bool) -> dict[str, Any]:
    inputs: dict[str, Any] = {"go-version": service.go_version, "check-latest": False, "cache": cache}
    return {"name": f"Set up Go {service.go_version}", **uses("actions/setup-go", inputs)}


def run_step(
    name: str, script: str, env: Mapping[str, Any] | None = None, id_: str | None = None
) -> dict[str, Any]:
    step: dict[str, Any] = {"name": name}
    if id_:
        step["id"] = id_
    if env:
        step["env"] = dict(env)
    step["run"] = script if script.endswith("\n") or "\n" not in script else script + "\n"
    return step


def _percent(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def coverage_gate_script() -> str:
    return (
        "go tool cover -func=coverage.out > coverage.txt\n"
        'total="$(awk \'/^total:/ { sub(/%$/, "", $NF); print $NF }\' coverage.txt)"\n'
        'echo "percent=${total}" >> "${GITHUB_OUTPUT}"\n'
        'echo "Test coverage ${total}% (threshold ${COVERAGE_THRESHOLD}%)"\n'
        'if ! awk -v total="${total}" -v min="${COVERAGE_THRESHOLD}" \'BEGIN { exit !(total + 0 >= min + 0) }\'; then\n'
        '  echo "::error::test coverage ${total}% is below the threshold of ${COVERAGE_THRESHOLD}%"\n'
        "  exit 1\n"
        "fi\n"
    )


def test_steps(service: Service) -> list[dict[str, Any]]:
    return [
        run_step(
            "Test with the race detector",
            "go test -race -covermode=atomic -coverprofile=coverage.out ./...",
            env={"CGO_ENABLED": "1"},  # -race needs cgo
        ),
        run_step(
            "Coverage gate",
            coverage_gate_script(),
            env={"COVERAGE_THRESHOLD": _percent(service.coverage_threshold)},
            id_="coverage",
        ),
    ]


def build_script(service: Service) -> str:
    lines = [
        "mkdir -p dist",
        'ldflags="-s -w -X main.version=${VERSION} -X main.commit=${GITHUB_SHA}"',
    ]
    for target in BINARY_TARGETS:
        goos, goarch = target.split("/")
        lines.append(
            f'CGO_ENABLED=0 GOOS={goos} GOARCH={goarch} go build -trimpath -ldflags "${{ldflags}}" '
            f"-o dist/{service.name}-{goos}-{goarch} {service.main_package}"
        )
    return "\n".join(lines) + "\n"


def checksums_script(service: Service) -> str:
    return (
        f"(cd dist && sha256sum -- {service.name}-* > SHA256SUMS)\n"
        'checksums="$(jq -R -s -c \'split("\\n") | map(select(length > 0) | split("  ") '
        "| {(.[1]): .[0]}) | add' dist/SHA256SUMS)\"\n"
        'echo "checksums=${checksums}" >> "${GITHUB_OUTPUT}"\n'
        'echo "go-version=$(go env GOVERSION)" >> "${GITHUB_OUTPUT}"\n'
    )


def cosign_key_flag(config: StackConfig) -> str:
    return " --key env://COSIGN_PRIVATE_KEY" if config.signing.mode == "keypair" else ""


def cosign_env(config: StackConfig, service: Service) -> dict[str, str]:
    env = {"IMAGE": image_repository(config, service), "DIGEST": "${{ steps.index.outputs.digest }}"}
    if config.signing.mode == "keypair":
        env["COSIGN_PRIVATE_KEY"] = secret_expression(SECRET_COSIGN_PRIVATE_KEY)
        env["COSIGN_PASSWORD"] = secret_expression(SECRET_COSIGN_PASSWORD)
    return env


def var_expression(name: str) -> str:
    return f"${{{{ vars.{name} }}}}"


def secret_expression(name: str) -> str:
    return f"${{{{ secrets.{name} }}}}"


def login_step(config: StackConfig) -> dict[str, Any]:
    return {
        "name": "Log in to the registry",
        **uses(
            "docker/login-action",
            {
                "registry": registry_host(config),
                "username": var_expression(VAR_REGISTRY_USERNAME),
                "password": secret_expression(SECRET_REGISTRY_PASSWORD),
            },
        ),
    }


def job_definition(
    name: str,
    steps: list[dict[str, Any]],
    *,
    timeout: int,
    cancel_in_progress: bool,
    permissions: Mapping[str, Any] | None = None,
    runs_on: str = DEFAULT_RUNNER,
    needs: Sequence[str] = (),
    environment: str | None = None,
    outputs: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    job: dict[str, Any] = {"name": name}
    if needs:
        job["needs"] = list(needs)
    job["runs-on"] = runs_on
    if environment:
        job["environment"] = environment
    job["permissions"] = dict(permissions or {})
    job["timeout-minutes"] = timeout
    job["concurrency"] = {
        "group": f"${{{{ github.workflow }}}}-${{{{ github.ref }}}}-{name}",
        "cancel-in-progress": cancel_in_progress,
    }
    if outputs:
        job["outputs"] = dict(outputs)
    job["steps"] = steps
    return job


def workflow_document(name: str, on: Mapping[str, Any], jobs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "on": dict(on),
        "permissions": {},
        "defaults": {"run": {"shell": "bash"}},
        "jobs": dict(jobs),
    }
