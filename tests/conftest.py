from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from roadbike.analyzer import PolicyPackProcess, running_pack
from tests.helpers import REPO, STACKS, roadbike


@pytest.fixture(scope="session")
def pack() -> Iterator[PolicyPackProcess]:
    """The real policy pack, started once as its own process and driven over gRPC."""
    with running_pack(REPO / "policies", "roadbike", "test") as process:
        process.connect()
        yield process


@pytest.fixture(scope="session")
def plans(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[Path, subprocess.CompletedProcess[str]]]:
    """`roadbike plan` of every committed stack, run once for the session: (output directory, process).

    Tests read these directories and must not change them.
    """
    results = {}
    for stack in STACKS:
        out = tmp_path_factory.mktemp(stack) / "plan"
        results[stack] = (out, roadbike("plan", "--stack", stack, "--out", str(out)))
    return results
