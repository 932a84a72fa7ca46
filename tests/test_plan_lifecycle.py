"""The policy pack process never outlives a plan: not on success, errors or Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.fleet import write_fleet
from roadbike.analyzer import running_pack
from tests.helpers import REPO


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


def test_pack_stopped_on_ctrl_c(tmp_path: Path) -> None:
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
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted" in err
    assert "Traceback" not in err
    assert not any(alive(pid) for pid in packs)
