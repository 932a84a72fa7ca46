"""The harness's build-push-action equivalent builds like ko, but holds the service to what the real action
needs: a Dockerfile at the context declaring every build arg (the example service's own is checked)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.github.harness import HarnessError, dockerfile_args
from tests.helpers import REPO

BUILD_ARGS = {"VERSION", "COMMIT"}


def test_the_example_services_dockerfile_declares_the_release_build_args() -> None:
    dockerfile_args(REPO / "examples" / "go-http-server", BUILD_ARGS)


def test_a_context_without_a_dockerfile_fails(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="no Dockerfile in the build context"):
        dockerfile_args(tmp_path, BUILD_ARGS)


def test_a_build_arg_the_dockerfile_does_not_declare_fails(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\nARG VERSION\n")
    with pytest.raises(HarnessError, match=r"declares no ARG for build args \['COMMIT'\]"):
        dockerfile_args(tmp_path, BUILD_ARGS)
