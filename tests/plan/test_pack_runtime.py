"""The policy pack runs as the engine runs it: its own virtualenv, with only policies/requirements.txt."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from google.protobuf import empty_pb2

from policies.catalog import POLICIES
from roadbike.analyzer import PolicyPackProcess
from tests.helpers import REPO

POLICY_PYTHON_ENV = "ROADBIKE_POLICY_PYTHON"


def test_no_pack_module_shadows_the_standard_library() -> None:
    # The engine starts the pack with its directory as the working directory, which Python puts first on
    # sys.path: a policies/types.py would replace the standard library's `types` before anything runs.
    shadowing = [p.name for p in (REPO / "policies").glob("*.py") if p.stem in sys.stdlib_module_names]
    assert shadowing == []


def test_pack_starts_in_its_own_virtualenv() -> None:
    python = Path(os.environ.get(POLICY_PYTHON_ENV, str(REPO / ".tools" / "policy-venv" / "bin" / "python")))
    if not python.is_absolute():
        python = REPO / python
    assert python.is_file(), (
        f"the pack's virtualenv is missing at {python}: run `make tools` (make test does)"
    )
    pack = PolicyPackProcess(REPO / "policies", "roadbike", "test", python=str(python))
    try:
        pack.start()
        pack.connect()
        info = pack.stub.GetAnalyzerInfo(empty_pb2.Empty())
    finally:
        pack.stop()
    assert info.name == "roadbike"
    assert [p.name for p in info.policies] == [p.name for p in POLICIES]
