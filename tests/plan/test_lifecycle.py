"""The policy pack process never outlives a plan: not on success, errors or Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.fleet import write_fleet
from roadbike.analyzer import AnalysisSession, PolicyPackError, running_pack, running_packs
from roadbike.program import ProgramRun
from tests.helpers import REPO, resource


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


def test_pack_stopped_when_the_plan_body_fails() -> None:
    with pytest.raises(RuntimeError), running_pack(REPO / "policies", "roadbike", "t") as pack:
        pack.connect()
        assert pack.process is not None
        pid = pack.process.pid
        assert alive(pid)
        raise RuntimeError("boom")
    assert not alive(pid)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_pack_stopped_on_ctrl_c_or_sigterm(tmp_path: Path, stop: signal.Signals) -> None:
    stack = write_fleet(tmp_path / "Pulumi.fleet.yaml", 300)
    command = [
        str(Path(sys.executable).parent / "roadbike"),
        "plan",
        "--stack",
        "fleet",
        "--config-file",
        str(stack),
    ]
    process = subprocess.Popen(
        [*command, "--out", str(tmp_path / "out")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    first = process.stderr.readline()
    assert "Running the program" in first, first
    deadline = time.monotonic() + 20
    packs: list[int] = []
    while not packs and time.monotonic() < deadline:
        packs = children(process.pid)
        time.sleep(0.05)
    assert packs, "the policy pack process was not started"
    process.send_signal(stop)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted" in err
    assert "Traceback" not in err
    assert not any(alive(pid) for pid in packs)


RAISING_PACK = """
from pulumi_policy import EnforcementLevel, PolicyPack, ResourceValidationPolicy


def explode(args, report_violation):
    raise RuntimeError("policy bug: cannot read " + args.name)


PolicyPack(
    name="broken",
    policies=[ResourceValidationPolicy(name="explodes", description="Always raises.", validate=explode)],
    enforcement_level=EnforcementLevel.MANDATORY,
)
"""


def test_a_policy_that_raises_fails_the_analysis_without_hanging(tmp_path: Path) -> None:
    (tmp_path / "PulumiPolicy.yaml").write_text("runtime: python\nversion: 0.0.1\n")
    (tmp_path / "__main__.py").write_text(RAISING_PACK)
    run = ProgramRun(
        project="roadbike",
        stack="t",
        resources=[
            resource("kubernetes:core/v1:Namespace", f"ns-{i}", {"kind": "Namespace"}) for i in range(80)
        ],
    )
    with running_packs(tmp_path, "roadbike", "t", 2) as packs:
        session = AnalysisSession(packs, "roadbike", "t", {})
        for recorded in run.resources:
            session.submit(recorded)
        outcome: list[BaseException] = []
        finisher = threading.Thread(target=lambda: _capture(outcome, lambda: session.finish(run)))
        finisher.start()
        finisher.join(timeout=60)
        assert not finisher.is_alive(), "the analysis hung after a policy raised"
    [error] = outcome
    assert isinstance(error, PolicyPackError)
    assert "policy bug: cannot read ns-" in str(error)


def _capture(outcome: list[BaseException], call: Callable[[], object]) -> None:
    try:
        call()
    except BaseException as error:
        outcome.append(error)
