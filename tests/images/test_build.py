"""The multi-arch image: renderer (tags, platforms, cache, no preview build) and MultiArchImage under mocks."""

from __future__ import annotations

import re
from typing import Any

from pulumi.runtime.rpc import UNKNOWN

from components.config import StackConfig
from components.images import build as images
from roadbike.program import is_secret
from tests.helpers import parse, run_raw, stack_raw

COMMIT = "0123456789abcdef0123456789abcdef01234567"
IMAGE = "docker-build:index:Image"
MULTI_ARCH_IMAGE = "roadbike:images:MultiArchImage"
REPOSITORY = "registry.delivery-dev.svc.cluster.local:5000/acme/go-http-server"


def with_commit(commit: str | None = COMMIT) -> dict[str, Any]:
    raw = stack_raw("dev")
    if commit:
        raw["services"][0]["bootstrapCommit"] = commit
    return raw


def config(raw: dict[str, Any] | None = None) -> StackConfig:
    return parse(raw or with_commit())


def test_tags_are_the_version_and_the_commit_never_latest() -> None:
    cfg = config()
    service = cfg.services[0]
    assert images.image_tags(cfg, service) == [f"{REPOSITORY}:1.4.2", f"{REPOSITORY}:{COMMIT}"]
    without = config(with_commit(None))
    assert images.image_tags(without, without.services[0]) == [f"{REPOSITORY}:1.4.2"]
    assert not [t for t in images.image_tags(cfg, service) if t.endswith(":latest")]


def test_build_metadata_makes_a_valid_oci_tag() -> None:
    assert images.image_tag("1.4.2+build.7") == "1.4.2_build.7"
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", images.image_tag("2.0.0-rc.1+sha.abc"))


def test_build_args_multi_arch_cached_and_never_in_preview() -> None:
    cfg = config()
    args = images.image_build_args(cfg, cfg.services[0])
    assert args["platforms"] == ["linux/amd64", "linux/arm64"]
    assert args["push"] is True and args["build_on_preview"] is False
    assert args["context"] == {"location": f"https://github.com/acme/go-http-server.git#{COMMIT}"}
    cache = f"{REPOSITORY}:buildcache"
    assert args["cache_from"] == [{"registry": {"ref": cache}}]
    assert args["cache_to"][0]["registry"]["ref"] == cache
    assert args["cache_to"][0]["registry"]["mode"] == "max"
    assert args["labels"]["org.opencontainers.image.revision"] == COMMIT
    assert images.image_build_args(cfg, cfg.services[0]) == args


def test_bootstrap_commit_must_be_a_full_sha() -> None:
    from components.config import ConfigError

    raw = with_commit("abc123")
    try:
        parse(raw)
    except ConfigError as error:
        [line] = error.problems
        assert "roadbike:services[0].bootstrapCommit" in line
    else:
        raise AssertionError("a short commit SHA was accepted")


def test_multi_arch_image_builds_and_outputs_ref_and_digest_under_mocks() -> None:
    run = run_raw(with_commit(), stack="dev")
    [build] = [r for r in run.resources if r.type == IMAGE]
    [component] = [r for r in run.resources if r.type == MULTI_ARCH_IMAGE and r.urn == build.parent]
    assert component.inputs["builds"] is True
    assert build.inputs["platforms"] == ["linux/amd64", "linux/arm64"]
    assert build.inputs["buildOnPreview"] is False
    assert build.inputs["push"] is True
    assert build.inputs["tags"] == [f"{REPOSITORY}:1.4.2", f"{REPOSITORY}:{COMMIT}"]
    assert build.inputs["cacheTo"][0]["registry"]["imageManifest"] is True
    [credentials] = build.inputs["registries"]
    assert credentials["address"] == "registry.delivery-dev.svc.cluster.local:5000"
    assert is_secret(credentials["password"])
    image = run.outputs["services"]["go-http-server"]["image"]
    assert image["repository"] == REPOSITORY and image["tag"] == "1.4.2"
    # Known once the image is built, at `pulumi up`; a first preview has them unknown, as the engine does.
    assert image["digest"] == UNKNOWN and image["ref"] == UNKNOWN


def test_without_a_commit_nothing_is_built_and_the_coordinates_remain() -> None:
    run = run_raw(stack_raw("dev"), stack="dev")
    assert not [r for r in run.resources if r.type == IMAGE]
    components = [r for r in run.resources if r.type == MULTI_ARCH_IMAGE]
    assert len(components) == len(stack_raw("dev")["services"])
    assert all(c.inputs["builds"] is False for c in components)
    image = run.outputs["services"]["orders-api"]["image"]
    assert image == {"repository": REPOSITORY.replace("go-http-server", "orders-api"), "tag": "2.0.0"}
