from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kubernetes.apiserver import ApiServer, api_server


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """One real kube-apiserver (and etcd) for the session, the upstream CRDs installed."""
    with api_server(tmp_path_factory.mktemp("apiserver")) as server:
        yield server
