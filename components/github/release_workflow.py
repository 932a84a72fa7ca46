"""`.github/workflows/release-<environment>.yml`: on a SemVer tag, test, build the binaries, build each
platform's image natively, merge them into one index, sign it and attest its SBOM, in the tier's environment.
"""

from __future__ import annotations

import re
from typing import Any

from components.config import SEMVER, Service, StackConfig
from components.github.delivery_report import (
    RELEASE_REPORT,
    RELEASE_STARTED,
    loki_step,
    report_job,
    sizes_step,
    started_job,
)
from components.github.steps import (
    COSIGN_STORAGE_FLAGS,
    METADATA_FILE,
    NATIVE_RUNNERS,
    READ_CONTENTS,
    SBOM_FILE,
    SECRET_REGISTRY_PASSWORD,
    TOOLS,
    VAR_REGISTRY_USERNAME,
    WORKFLOW_DIRECTORY,
    build_script,
    checkout_step,
    checksums_script,
    cosign_env,
    cosign_key_flag,
    job_definition,
    login_step,
    run_step,
    secret_expression,
    setup_go_step,
    test_steps,
    uses,
    var_expression,
    workflow_document,
)
from components.github.workflow_yaml import Commented
from components.naming import image_repository, release_environment

RELEASE_TAG, RELEASE_TEST, RELEASE_BINARIES, RELEASE_PUBLISH = (
    "release-tag",
    "release-test",
    "release-binaries",
    "release-publish",
)


def release_workflow_name(config: StackConfig) -> str:
    """The stack tier's release workflow, e.g. `release-prod`: every tier releases each tag in its own
    workflow, gated by its own environment. Distinct names keep the tiers' concurrency groups apart."""
    return f"release-{release_environment(config)}"


def release_workflow_path(config: StackConfig) -> str:
    """e.g. `.github/workflows/release-prod.yml`; the keyless signing identity names this file."""
    return f"{WORKFLOW_DIRECTORY}{release_workflow_name(config)}.yml"


def semver_tag_script() -> str:
    return (
        'if [[ "${GITHUB_REF_TYPE}" != "tag" || "${GITHUB_REF_NAME}" != v* ]]; then\n'
        '  echo "::error::a release runs on a tag named v<SemVer 2.0.0>"\n'
        "  exit 1\n"
        "fi\n"
        'version="${GITHUB_REF_NAME#v}"\n'
        'if ! printf \'%s\\n\' "${version}" | grep -qP -- "${SEMVER_PATTERN}"; then\n'
        '  echo "::error::the tag is not v followed by a SemVer 2.0.0 version (https://semver.org)"\n'
        "  exit 1\n"
        "fi\n"
        'echo "version=${version}" >> "${GITHUB_OUTPUT}"\n'
    )


def merge_script(service: Service) -> str:
    sources = " ".join(f'"${{IMAGE}}@${{{_digest_env(p)}}}"' for p in service.platforms)
    # OCI tags allow [A-Za-z0-9_.-]: SemVer build metadata's '+' becomes '_', as components.images.image_tag.
    return (
        'tag="${VERSION//+/_}"\n'
        f'docker buildx imagetools create --tag "${{IMAGE}}:${{tag}}" {sources}\n'
        'digest="$(docker buildx imagetools inspect "${IMAGE}:${tag}" --format \'{{json .Manifest}}\' '
        '| jq -r .digest)"\n'
        'echo "digest=${digest}" >> "${GITHUB_OUTPUT}"\n'
    )


def metadata_script() -> str:
    return (
        "jq -n \\\n"
        '  --arg commit_sha "${GITHUB_SHA}" \\\n'
        '  --arg build_id "${GITHUB_RUN_ID}.${GITHUB_RUN_ATTEMPT}" \\\n'
        '  --arg go_version "${GO_VERSION}" \\\n'
        '  --argjson binary_checksums "${BINARY_CHECKSUMS}" \\\n'
        '  --argjson test_coverage_percent "${TEST_COVERAGE_PERCENT}" \\\n'
        '  --arg version "${VERSION}" \\\n'
        '  --arg image "${IMAGE}@${DIGEST}" \\\n'
        "  '{commit_sha: $commit_sha, build_id: $build_id, go_version: $go_version,\n"
        "    binary_checksums: $binary_checksums, test_coverage_percent: $test_coverage_percent,\n"
        f"    version: $version, image: $image}}' > {METADATA_FILE}\n"
        "{\n"
        '  echo "## Build metadata"\n'
        "  echo\n"
        "  echo '```json'\n"
        f"  cat {METADATA_FILE}\n"
        "  echo '```'\n"
        '} >> "${GITHUB_STEP_SUMMARY}"\n'
    )


def image_job_name(platform: str) -> str:
    return "release-image-" + platform.replace("/", "-")


def _digest_env(platform: str) -> str:
    return "DIGEST_" + re.sub(r"[^A-Z0-9]", "_", platform.upper())


def _image_job(config: StackConfig, service: Service, platform: str) -> dict[str, Any]:
    repository = f"{config.github.owner}/{service.repository}"
    build = {
        "name": f"Build and push {platform} by digest",
        "id": "build",
        **uses(
            "docker/build-push-action",
            {
                "context": ".",
                "platforms": platform,
                "build-args": (
                    f"VERSION=${{{{ needs.{RELEASE_TAG}.outputs.version }}}}\nCOMMIT=${{{{ github.sha }}}}\n"
                ),
                "labels": (
                    f"org.opencontainers.image.source=https://github.com/{repository}\n"
                    f"org.opencontainers.image.version=${{{{ needs.{RELEASE_TAG}.outputs.version }}}}\n"
                    "org.opencontainers.image.revision=${{ github.sha }}\n"
                ),
                "outputs": (
                    f"type=image,name={image_repository(config, service)},push-by-digest=true,"
                    "name-canonical=true,push=true"
                ),
                # provenance and the SBOM are attested on the merged index, not per platform
                "provenance": False,
                "sbom": False,
                "no-cache": True,
            },
        ),
    }
    return job_definition(
        image_job_name(platform),
        [
            checkout_step(),
            {"name": "Set up Buildx", **uses("docker/setup-buildx-action", {"cache-binary": False})},
            login_step(config),
            build,
        ],
        timeout=30,
        cancel_in_progress=False,
        permissions=READ_CONTENTS,
        runs_on=NATIVE_RUNNERS[platform],
        needs=(RELEASE_TAG, RELEASE_TEST),
        environment=release_environment(config),
        outputs={"digest": "${{ steps.build.outputs.digest }}"},
    )


def _cosign_install(config: StackConfig) -> list[dict[str, Any]]:
    if config.signing.mode == "none":
        return []
    inputs = {"cosign-release": TOOLS["cosign"]}
    return [{"name": "Install cosign", **uses("sigstore/cosign-installer", inputs)}]


def _cosign_sign(config: StackConfig, service: Service) -> list[dict[str, Any]]:
    if config.signing.mode == "none":
        return []
    command = f'cosign sign --yes {COSIGN_STORAGE_FLAGS}{cosign_key_flag(config)} "${{IMAGE}}@${{DIGEST}}"'
    return [run_step("Sign the index by digest", command, env=cosign_env(config, service))]


def _cosign_attest_sbom(config: StackConfig, service: Service) -> list[dict[str, Any]]:
    if config.signing.mode == "none":
        return []
    command = (
        f"cosign attest --yes {COSIGN_STORAGE_FLAGS}{cosign_key_flag(config)} --type spdxjson "
        f'--predicate {SBOM_FILE} "${{IMAGE}}@${{DIGEST}}"'
    )
    return [run_step("Attest the SBOM", command, env=cosign_env(config, service))]


def _publish_permissions(config: StackConfig) -> dict[str, Any]:
    oidc_use = (
        "keyless Sigstore signing and the provenance attestation"
        if config.signing.mode == "keyless"
        else "the build provenance attestation"
    )
    return {
        "contents": "read",
        "id-token": Commented("write", f"OIDC token for {oidc_use}"),
        "attestations": Commented("write", "store the build provenance attestation"),
    }


def _publish_job(config: StackConfig, service: Service) -> dict[str, Any]:
    image_jobs = [image_job_name(p) for p in service.platforms]
    index = "${{ steps.index.outputs.digest }}"
    merge = run_step(
        "Merge the platform images into one index",
        merge_script(service),
        env={
            "IMAGE": image_repository(config, service),
            "VERSION": f"${{{{ needs.{RELEASE_TAG}.outputs.version }}}}",
            **{
                _digest_env(p): f"${{{{ needs.{image_job_name(p)}.outputs.digest }}}}"
                for p in service.platforms
            },
        },
        id_="index",
    )
    sbom = {
        "name": "Generate the SBOM (SPDX JSON)",
        **uses(
            "anchore/sbom-action",
            {
                "image": f"{image_repository(config, service)}@{index}",
                "format": "spdx-json",
                "output-file": SBOM_FILE,
                "syft-version": TOOLS["syft"],
                "upload-artifact": False,
                "upload-release-assets": False,
                "registry-username": var_expression(VAR_REGISTRY_USERNAME),
                "registry-password": secret_expression(SECRET_REGISTRY_PASSWORD),
            },
        ),
    }
    provenance = {
        "name": "Attest build provenance",
        **uses(
            "actions/attest-build-provenance",
            {
                "subject-name": image_repository(config, service),
                "subject-digest": index,
                "push-to-registry": True,
            },
        ),
    }
    metadata = run_step(
        "Write the build metadata",
        metadata_script(),
        env={
            "GO_VERSION": f"${{{{ needs.{RELEASE_BINARIES}.outputs.go-version }}}}",
            "BINARY_CHECKSUMS": f"${{{{ needs.{RELEASE_BINARIES}.outputs.checksums }}}}",
            "TEST_COVERAGE_PERCENT": f"${{{{ needs.{RELEASE_TEST}.outputs.coverage }}}}",
            "VERSION": f"${{{{ needs.{RELEASE_TAG}.outputs.version }}}}",
            "IMAGE": image_repository(config, service),
            "DIGEST": index,
        },
    )
    upload = {
        "name": "Upload the build metadata and SBOM",
        **uses(
            "actions/upload-artifact",
            {
                "name": "build-metadata",
                "path": f"{METADATA_FILE}\n{SBOM_FILE}\n",
                "if-no-files-found": "error",
            },
        ),
    }
    steps = [
        login_step(config),
        *_cosign_install(config),
        merge,
        *_cosign_sign(config, service),
        sbom,
        *_cosign_attest_sbom(config, service),
        provenance,
        metadata,
        *(loki_step(config, service, config.delivery) if config.delivery else []),
        upload,
    ]
    return job_definition(
        RELEASE_PUBLISH,
        steps,
        timeout=20,
        cancel_in_progress=False,
        permissions=_publish_permissions(config),
        needs=(RELEASE_TAG, RELEASE_TEST, RELEASE_BINARIES, *image_jobs),
        environment=release_environment(config),
        outputs={"digest": index},
    )


def release_workflow(config: StackConfig, service: Service) -> dict[str, Any]:
    """SemVer tags: validate, test, binaries, one native image job per platform, then index + sign + attest."""
    tag = job_definition(
        RELEASE_TAG,
        [
            run_step(
                "Validate the tag against SemVer 2.0.0",
                semver_tag_script(),
                {"SEMVER_PATTERN": SEMVER.pattern},
                "semver",
            )
        ],
        timeout=5,
        cancel_in_progress=False,
        outputs={"version": "${{ steps.semver.outputs.version }}"},
    )
    setup = [checkout_step(), setup_go_step(service, cache=False)]
    test = job_definition(
        RELEASE_TEST,
        [*setup, *test_steps(service)],
        timeout=20,
        cancel_in_progress=False,
        permissions=READ_CONTENTS,
        needs=(RELEASE_TAG,),
        outputs={"coverage": "${{ steps.coverage.outputs.percent }}"},
    )
    binaries = job_definition(
        RELEASE_BINARIES,
        [
            *setup,
            run_step(
                "Build static binaries",
                build_script(service),
                env={"VERSION": f"${{{{ needs.{RELEASE_TAG}.outputs.version }}}}"},
            ),
            run_step("Checksums", checksums_script(service), id_="checksums"),
            *([sizes_step(service)] if config.delivery else []),
            {
                "name": "Upload the binaries",
                **uses(
                    "actions/upload-artifact",
                    {"name": "binaries", "path": "dist/", "if-no-files-found": "error"},
                ),
            },
        ],
        timeout=15,
        cancel_in_progress=False,
        permissions=READ_CONTENTS,
        needs=(RELEASE_TAG,),
        outputs={
            "checksums": "${{ steps.checksums.outputs.checksums }}",
            "go-version": "${{ steps.checksums.outputs.go-version }}",
            **({"sizes": "${{ steps.sizes.outputs.sizes }}"} if config.delivery else {}),
        },
    )
    jobs: dict[str, Any] = {RELEASE_TAG: tag, RELEASE_TEST: test, RELEASE_BINARIES: binaries}
    for platform in service.platforms:
        jobs[image_job_name(platform)] = _image_job(config, service, platform)
    jobs[RELEASE_PUBLISH] = _publish_job(config, service)
    if config.delivery is not None:
        # delivery health: the release notes its start and reports itself at the end, whatever happened
        names = {"tag": RELEASE_TAG, "test": RELEASE_TEST, "binaries": RELEASE_BINARIES}
        before = list(jobs)
        jobs = {RELEASE_TAG: tag, RELEASE_STARTED: started_job(RELEASE_TAG), **jobs}
        jobs[RELEASE_REPORT] = report_job(config, service, config.delivery, before, names)
    return workflow_document(release_workflow_name(config), {"push": {"tags": ["v*"]}}, jobs)
