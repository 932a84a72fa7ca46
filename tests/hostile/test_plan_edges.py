"""`roadbike plan` against careless and hostile use of its command line: --out never deletes what roadbike
did not write, --stack is a name, two plans never mix, exit codes mean one thing each."""

from __future__ import annotations

import fcntl
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from roadbike.analyzer import PolicyPackError
from roadbike.outdir import MARKER
from roadbike.plan import PlanOptions, run_plan
from tests.helpers import REPO, roadbike, stack_raw, write_stack


def plan(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return roadbike("plan", "--stack", "dev", "--out", str(out), *extra)


# --- 1. --out never deletes what roadbike did not write ------------------------------------------------


def test_a_directory_with_a_plan_json_of_its_own_is_not_replaced(tmp_path: Path) -> None:
    tree = tmp_path / "src"
    (tree / ".git").mkdir(parents=True)
    (tree / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (tree / "plan.json").write_text("{}")
    (tree / "main.go").write_text("package main\n")
    result = plan(tree)
    assert result.returncode == 2, result.stderr
    assert "not a roadbike plan directory" in result.stderr
    assert sorted(p.name for p in tree.iterdir()) == [".git", "main.go", "plan.json"]


def test_a_plan_directory_is_replaced_but_a_file_added_to_it_is_never_deleted(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert plan(out).returncode == 0
    assert (out / MARKER).is_file()
    assert plan(out).returncode == 0  # roadbike's own plan: replaced
    (out / "notes.txt").write_text("mine")
    result = plan(out)
    assert result.returncode == 2 and "notes.txt" in result.stderr, result.stderr
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "plan.json").is_file()


def test_a_symbolic_link_inside_a_plan_directory_is_never_followed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert plan(out).returncode == 0
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("keep")
    shutil.rmtree(out / "k8s")
    (out / "k8s").symlink_to(precious)
    result = plan(out)
    assert result.returncode == 2, result.stderr
    assert (precious / "keep.txt").read_text() == "keep"


@pytest.mark.parametrize("stack", ["../escape", "a/b", "..", ".hidden", "dev\n", ""])
def test_the_stack_is_a_name_not_a_path(tmp_path: Path, stack: str) -> None:
    result = roadbike("plan", "--stack", stack, cwd=REPO)
    assert result.returncode == 2, result.stderr
    assert "--stack" in result.stderr and "Traceback" not in result.stderr
    assert not (REPO / "escape").exists()


def test_a_second_plan_into_a_directory_being_written_refuses(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with open(tmp_path / ".out.roadbike-lock", "w") as lock:  # as a plan in progress holds it
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = plan(out)
    assert result.returncode == 2, result.stderr
    assert "another roadbike plan is writing this directory" in result.stderr
    assert not out.exists()


def test_two_plans_at_once_never_leave_a_mixed_tree(tmp_path: Path) -> None:
    out = tmp_path / "out"
    prod = write_stack(tmp_path / "Pulumi.prod.yaml", stack_raw("prod"))
    command = [str(Path(sys.executable).parent / "roadbike"), "plan", "--out", str(out)]
    first = subprocess.Popen([*command, "--stack", "dev"], cwd=REPO, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(
        [*command, "--stack", "prod", "--config-file", str(prod)], cwd=REPO, stderr=subprocess.PIPE, text=True
    )
    codes = sorted((first.wait(timeout=300), second.wait(timeout=300)))
    assert codes in ([0, 0], [0, 2]), codes  # one after the other, or one refused by the lock
    stacks = {p.name.split(".")[0] for p in (out / "github").rglob("release-*.yml")}
    assert len(stacks) == 1, stacks  # the release workflows of one stack only
    assert not [p for p in tmp_path.iterdir() if ".roadbike-" in p.name]


# --- 10. exit codes that mean one thing -----------------------------------------------------------------


def _file_size_limit() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))


def test_a_full_disk_is_exit_3_and_leaves_no_truncated_plan(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "roadbike"), "plan", "--stack", "dev", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_file_size_limit,
    )
    assert result.returncode == 3, result.stderr
    assert "cannot write the plan" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".roadbike-" in p.name]


def test_a_full_disk_never_leaves_a_truncated_plan_in_place_of_the_previous(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert plan(out).returncode == 0
    result = subprocess.run(
        [str(Path(sys.executable).parent / "roadbike"), "plan", "--stack", "dev", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_file_size_limit,
    )
    assert result.returncode == 3, result.stderr
    # The previous result does not survive a failed run: its place holds the record of the errors,
    # complete (every file its marker lists), and no truncated plan.
    listed = json.loads((out / MARKER).read_text())["files"]
    assert sorted(listed) == sorted(
        p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != MARKER
    )
    assert "the plan failed" in (out / "policy/summary.md").read_text()
    assert json.loads((out / "plan.json").read_text())["resources"] == []
    assert not [p for p in tmp_path.iterdir() if ".roadbike-" in p.name]


KILLER = """

def _die_on_namespace(args, report_violation):
    import os, signal, sys
    if args.resource_type == "kubernetes:core/v1:Namespace":
        print("about to be killed", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


POLICIES.append(
    ResourceValidationPolicy(
        name="test-pack-dies",
        description="Kills the pack process (test).",
        enforcement_level=EnforcementLevel.ADVISORY,
        validate=_die_on_namespace,
    )
)
"""


def test_a_pack_that_dies_is_an_internal_error_with_its_signal_and_last_lines(tmp_path: Path) -> None:
    packs = tmp_path / "project"
    shutil.copytree(
        REPO / "policies", packs / "policies", ignore=shutil.ignore_patterns("venv", "__pycache__")
    )
    kubernetes = packs / "policies" / "kubernetes.py"
    kubernetes.write_text(kubernetes.read_text() + KILLER)
    options = PlanOptions(
        stack="dev", project_dir=REPO, out_dir=tmp_path / "out", policy_pack_dir=packs / "policies"
    )
    with pytest.raises(PolicyPackError) as caught:
        run_plan(options, err=open(os.devnull, "w"))  # noqa: SIM115
    message = str(caught.value)
    assert "killed by SIGKILL" in message and "about to be killed" in message, message
    assert not (tmp_path / "out").exists()


# --- 6. the generated rules are checked with the real PromQL parser ------------------------------------


def test_a_selector_promql_refuses_is_exit_2_naming_the_key(tmp_path: Path) -> None:
    raw = stack_raw("dev")
    raw["services"][0]["slos"][0]["sli"]["errors"] = 'http_requests_total{code=~"5{2,1}"}'
    stack = write_stack(tmp_path / "Pulumi.dev.yaml", raw)
    result = roadbike("plan", "--stack", "dev", "--config-file", str(stack), "--out", str(tmp_path / "o"))
    assert result.returncode == 2, result.stderr
    assert "roadbike:services[0].slos[0].sli: makes the generated rule" in result.stderr
    assert "promtool" in result.stderr
    assert not (tmp_path / "o").exists()
