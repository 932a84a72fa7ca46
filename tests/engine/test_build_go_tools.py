"""tools/build-go-tools.sh with a fake `go`: on a cold Go module cache `go` reports each module it downloads
on stderr, which must not be read as the version a wrapper module builds; a build that finds the tool
cache locked by another says so before it waits."""

from __future__ import annotations

import fcntl
import os
import select
import stat
import subprocess
from pathlib import Path

from tests.helpers import REPO

SCRIPT = REPO / "tools" / "build-go-tools.sh"

# `go list` prints the version asked for on stdout after its download notes on stderr, as a cold cache
# does; `go build` fails on purpose, so the script stops at the first step after the version check.
FAKE_GO = """#!/usr/bin/env bash
case "$1" in
  env) case "$2" in GOVERSION) echo go1.26.0;; GOOS) echo linux;; GOARCH) echo amd64;; esac;;
  list) echo "go: downloading github.com/pulumi/pulumi/pkg/v3 $PINNED" >&2; echo "$PINNED";;
  build) echo "no build in this test" >&2; exit 3;;
  *) exit 4;;
esac
"""


def _pinned(name: str) -> str:
    listing = subprocess.run([str(SCRIPT), "--list"], capture_output=True, text=True, check=True, timeout=60)
    versions = dict(line.split()[:2] for line in listing.stdout.splitlines() if line.strip())
    return "v" + versions[name]


def _fake_go(tmp_path: Path) -> dict[str, str]:
    """The environment of a build whose `go` is FAKE_GO and whose tool cache is under tmp_path."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "go"
    fake.write_text(FAKE_GO)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "ROADBIKE_TOOLS_CACHE": str(tmp_path / "cache"),
        "PINNED": _pinned("pulumi"),
    }


def test_download_notes_on_stderr_are_not_taken_for_the_version(tmp_path: Path) -> None:
    env = _fake_go(tmp_path)
    built = subprocess.run(
        [str(SCRIPT), "pulumi"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert built.returncode == 1, built.stderr
    assert "version check" not in built.stderr, built.stderr
    assert "FAILED: pulumi: go build" in built.stderr, built.stderr
    assert "no build in this test" in built.stderr  # the build step's log, shown as it failed


def test_a_build_waiting_for_the_cache_lock_says_so(tmp_path: Path) -> None:
    env = _fake_go(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another build of the same cache
        waiting = subprocess.Popen(
            [str(SCRIPT), "pulumi"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
        )
        try:
            assert waiting.stderr is not None
            ready, _, _ = select.select([waiting.stderr], [], [], 30)
            first = waiting.stderr.readline() if ready else ""
            assert "another build holds" in first and ".lock" in first, first
            assert waiting.poll() is None  # still waiting while the lock is held
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)  # released, the build goes on and fails at the fake go build
        _, rest = waiting.communicate(timeout=60)
    assert waiting.returncode == 1 and "FAILED: pulumi: go build" in rest, rest
