from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kubernetes.apiserver import ApiServer, api_server
from tests.kubernetes.test_up import Lifecycle, run_lifecycle


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """One real kube-apiserver (and etcd) for the session, the upstream CRDs installed."""
    with api_server(tmp_path_factory.mktemp("apiserver")) as server:
        yield server


@pytest.fixture(scope="session")
def lifecycles(cluster: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Lifecycle]:
    """The lifecycle of dev and prod (tests/kubernetes/test_up.py), run once for every module reading it."""
    return {
        stack: run_lifecycle(stack, cluster, tmp_path_factory.mktemp(f"up-{stack}"))
        for stack in ("dev", "prod")
    }
