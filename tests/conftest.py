from __future__ import annotations

from collections.abc import Iterator

import pytest

from roadbike.analyzer import PolicyPackProcess, running_pack
from tests.helpers import REPO


@pytest.fixture(scope="session")
def pack() -> Iterator[PolicyPackProcess]:
    """The real policy pack, started once as its own process and driven over gRPC."""
    with running_pack(REPO / "policies", "roadbike", "test") as process:
        process.connect()
        yield process
