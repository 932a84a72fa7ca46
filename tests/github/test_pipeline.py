"""The generated ci.yml and release-<env>.yml run for real on the example Go service
(examples/go-http-server) through the harness (tests/github/harness.py): the workflows' own `run:` text,
each `uses:` through its local equivalent, the Go tools at the versions the workflows pin."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import StackConfig
from components.github.ci_workflow import CI_WORKFLOW
from components.github.files import render_files
from components.github.release_workflow import (
    release_workflow_path,
)
from components.github.steps import BINARY_TARGETS, TOOLS
from tests.github.harness import LOCAL_ACTIONS, HarnessError, WorkflowRun, checkout, setup_go
from tests.helpers import REPO, go_tools_bin, parse, require_go_tool, require_tool, stack_raw, vulndb

EXAMPLE = REPO / "examples" / "go-http-server"
SERVICE = "go-http-server"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def config(coverage_threshold: float | None = None) -> StackConfig:
    raw = stack_raw("dev")
    if coverage_threshold is not None:
        [service] = [s for s in raw["services"] if s["name"] == SERVICE]
        service["coverageThreshold"] = coverage_threshold
    return parse(raw)


def workflow(path: str, stack_config: StackConfig | None = None) -> dict[str, Any]:
    """A workflow exactly as the dev stack commits it to the service's repository."""
    stack_config = stack_config or config()
    [service] = [s for s in stack_config.services if s.name == SERVICE]
    return dict(yaml.safe_load(render_files(stack_config, service)[path]))


def tool_path() -> list[Path]:
    go = require_tool("go")
    require_go_tool("golangci-lint")
    return [go_tools_bin(), Path(go).resolve().parent]


def new_run(document: dict[str, Any], root: Path, ref: str, **kwargs: Any) -> WorkflowRun:
    ref_name = ref.rsplit("/", 1)[-1]
    github = {
        "sha": COMMIT,
        "ref": ref,
        "ref_name": ref_name,
        "ref_type": "tag" if ref.startswith("refs/tags/") else "branch",
        "workflow": str(document["name"]),
        "run_id": "4242",
        "run_attempt": "1",
        "repository": f"acme/{SERVICE}",
    }
    return WorkflowRun(document, EXAMPLE, root, LOCAL_ACTIONS, path=tool_path(), github=github, **kwargs)


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory: pytest.TempPathFactory) -> WorkflowRun:
    run = new_run(workflow(CI_WORKFLOW), tmp_path_factory.mktemp("ci"), "refs/heads/main")
    run.run_jobs(["lint", "test", "build"])
    return run


# --- binaries ------------------------------------------------------------------------------------


def go_version_m(binary: Path) -> dict[str, str]:
    """`go version -m`: the build settings recorded in the binary."""
    output = subprocess.run(
        [require_tool("go"), "version", "-m", str(binary)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    settings = {}
    for line in output.splitlines():
        fields = line.strip().split("\t")
        if fields[0] == "build" and "=" in fields[1]:
            key, value = fields[1].split("=", 1)
            settings[key] = value.strip('"')
    return settings


def elf_sections_and_interp(binary: Path) -> tuple[set[str], bool]:
    """An ELF64 little-endian file's section names and whether it asks for a dynamic loader (PT_INTERP)."""
    data = binary.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, f"{binary.name}: not ELF64 LE"
    phoff, shoff = struct.unpack_from("<QQ", data, 0x20)
    phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from("<HHHHH", data, 0x36)
    interp = any(struct.unpack_from("<I", data, phoff + i * phentsize)[0] == 3 for i in range(phnum))
    strtab_offset = struct.unpack_from("<Q", data, shoff + shstrndx * shentsize + 0x18)[0]
    names = set()
    for i in range(shnum):
        name_offset = struct.unpack_from("<I", data, shoff + i * shentsize)[0]
        end = data.index(b"\0", strtab_offset + name_offset)
        names.add(data[strtab_offset + name_offset : end].decode())
    return names, interp


def check_binaries(dist: Path, version: str) -> dict[str, int]:
    """Every target: static (cgo off, no dynamic loader), stripped (no symbol table), -trimpath, and the
    -X version and commit strings in it; returns the sizes."""
    sizes = {}
    for target in BINARY_TARGETS:
        goos, goarch = target.split("/")
        binary = dist / f"{SERVICE}-{goos}-{goarch}"
        assert binary.is_file(), f"{binary.name} was not built"
        settings = go_version_m(binary)
        assert settings["GOOS"] == goos and settings["GOARCH"] == goarch, settings
        assert settings["CGO_ENABLED"] == "0", settings
        assert settings["-trimpath"] == "true", settings
        assert "-ldflags" not in settings, settings  # -trimpath leaves the flags out of the build info
        content = binary.read_bytes()
        assert version.encode() in content and COMMIT.encode() in content, (
            f"{binary.name}: no -X version/commit"
        )
        if goos == "linux":
            sections, interp = elf_sections_and_interp(binary)
            assert not interp and ".dynamic" not in sections, f"{binary.name} is dynamically linked"
            assert ".symtab" not in sections, f"{binary.name} is not stripped"
        sizes[binary.name] = binary.stat().st_size
    return sizes


# --- ci.yml --------------------------------------------------------------------------------------


def test_ci_lint_job_runs_verify_vet_and_the_pinned_golangci_lint(ci_run: WorkflowRun) -> None:
    assert "all modules verified" in ci_run.logs[("lint", "Verify module checksums")]
    lint_log = ci_run.logs[("lint", "golangci-lint")]
    assert "0 issues" in lint_log, lint_log


def test_ci_test_job_passes_the_race_tests_and_the_coverage_gate(ci_run: WorkflowRun) -> None:
    log = ci_run.logs[("test", "Test with the race detector")]
    assert re.search(r"^ok\s+github\.com/acme/go-http-server\s", log, re.M), log
    gate = ci_run.logs[("test", "Coverage gate")]
    match = re.search(r"Test coverage ([\d.]+)% \(threshold 80%\)", gate)
    assert match, gate
    assert float(match.group(1)) > 80


def test_ci_build_job_builds_static_stripped_binaries_with_version_and_commit(ci_run: WorkflowRun) -> None:
    sizes = check_binaries(ci_run.workspace("build") / "dist", f"0.0.0-ci+{COMMIT[:12]}")
    assert all(size > 1_000_000 for size in sizes.values()), sizes


def test_coverage_gate_fails_when_the_threshold_is_above_the_real_coverage(tmp_path: Path) -> None:
    document = workflow(CI_WORKFLOW, config(coverage_threshold=99))
    run = new_run(document, tmp_path, "refs/heads/main")
    with pytest.raises(HarnessError) as failed:
        run.run_jobs(["test"])
    message = str(failed.value)
    assert message.startswith("job test, step 'Coverage gate': exit 1"), message
    assert re.search(r"::error::test coverage [\d.]+% is below the threshold of 99%", message), message


def test_vulncheck_job_runs_the_pinned_govulncheck_against_the_offline_database(tmp_path: Path) -> None:
    """The job's step is `go run golang.org/x/vuln/cmd/govulncheck@<pin>`, which asks vuln.go.dev; here the
    same pinned govulncheck (make go-tools) reads the database of the golang.org/x/vulndb module instead."""
    [step] = [s for s in workflow(CI_WORKFLOW)["jobs"]["vulncheck"]["steps"] if "run" in s]
    assert step["run"].strip() == f"go run {TOOLS['govulncheck']} ./..."
    govulncheck = require_go_tool("govulncheck")
    reported = subprocess.run([govulncheck, "-version"], capture_output=True, text=True, timeout=60).stdout
    assert f"govulncheck@{TOOLS['govulncheck'].rsplit('@', 1)[1]}" in reported, reported
    shutil.copytree(EXAMPLE, tmp_path / "src")
    result = subprocess.run(
        [govulncheck, "-db", (vulndb()).as_uri(), "-format", "json", "./..."],
        cwd=tmp_path / "src",
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    findings = [json.loads(m)["finding"] for m in split_json_stream(result.stdout) if '"finding"' in m[:20]]
    called = [f for f in findings if f["trace"][0].get("function")]
    # The example's own modules: no vulnerability its code calls; the standard library's are the local Go's.
    assert all(f["trace"][0]["module"] == "stdlib" for f in called), called


def split_json_stream(text: str) -> Iterator[str]:
    decoder = json.JSONDecoder()
    index = 0
    while index < len(text):
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            return
        _, end = decoder.raw_decode(text, index)
        yield text[index:end]
        index = end


# --- the harness's own failures --------------------------------------------------------------------


def synthetic(steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": "t", "defaults": {"run": {"shell": "bash"}}, "jobs": {"only": {"steps": steps}}}


def test_harness_fails_naming_job_and_step_on_an_action_without_local_equivalent(tmp_path: Path) -> None:
    document = synthetic(
        [{"name": "Cache", "uses": "actions/cache@0057852bfaa89a56745cba8c7296529d2fc39830"}]
    )
    with pytest.raises(
        HarnessError, match=r"^job only, step 'Cache': uses actions/cache, which has no local"
    ):
        new_run(document, tmp_path, "refs/heads/main").run_jobs()


def test_harness_fails_naming_job_and_step_on_a_failing_step(tmp_path: Path) -> None:
    document = synthetic(
        [{"name": "Fine", "run": "true"}, {"name": "Breaks", "run": "echo broken >&2\nexit 3"}]
    )
    with pytest.raises(HarnessError, match=r"^job only, step 'Breaks': exit 3:\nbroken"):
        new_run(document, tmp_path, "refs/heads/main").run_jobs()


def test_harness_fails_on_a_condition_it_cannot_decide_and_runs_always(tmp_path: Path) -> None:
    document = synthetic([{"name": "Always", "if": "always()", "run": "true"}])
    new_run(document, tmp_path, "refs/heads/main").run_jobs()
    document = synthetic([{"name": "On failure", "if": "${{ failure() }}", "run": "true"}])
    with pytest.raises(
        HarnessError, match=r"^job only, step 'On failure': if: '\$\{\{ failure\(\) \}\}' is not supported"
    ):
        new_run(document, tmp_path, "refs/heads/main").run_jobs()


def test_harness_fails_on_a_step_key_it_does_not_honour(tmp_path: Path) -> None:
    document = synthetic([{"name": "Flaky", "run": "exit 1", "continue-on-error": True}])
    with pytest.raises(
        HarnessError, match=r"^job only, step 'Flaky': continue-on-error is not supported here"
    ):
        new_run(document, tmp_path, "refs/heads/main").run_jobs()


def test_harness_fails_naming_a_missing_tool(tmp_path: Path) -> None:
    document = synthetic([{"name": "Needs a tool", "run": "roadbike-no-such-tool --version"}])
    with pytest.raises(
        HarnessError, match=r"step 'Needs a tool': needs roadbike-no-such-tool, which is not installed"
    ):
        new_run(document, tmp_path, "refs/heads/main").run_jobs()


def test_harness_fails_when_setup_go_finds_no_go(tmp_path: Path) -> None:
    document = synthetic(
        [{"name": "Set up Go", "uses": "actions/setup-go@x", "with": {"go-version": "1.23"}}]
    )
    run = new_run(document, tmp_path, "refs/heads/main")
    run.path = [tmp_path]
    with pytest.raises(
        HarnessError, match=r"^job only, step 'Set up Go': actions/setup-go: go is not on PATH"
    ):
        run.run_jobs()


def test_the_local_equivalents_table_covers_every_action_the_workflows_use() -> None:
    used = {
        str(s["uses"]).split("@")[0]
        for path in (CI_WORKFLOW, release_workflow_path(config()))
        for job in workflow(path)["jobs"].values()
        for s in job["steps"]
        if "uses" in s
    }
    assert used <= set(LOCAL_ACTIONS), used - set(LOCAL_ACTIONS)
    assert LOCAL_ACTIONS["actions/checkout"] is checkout and LOCAL_ACTIONS["actions/setup-go"] is setup_go


def test_the_go_tools_file_builds_every_tool_at_the_version_the_workflows_pin() -> None:
    """tools/go-tools.txt and TOOLS move together: the tests run the generated steps with these builds."""
    built = {}
    for line in (REPO / "tools" / "go-tools.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split()[:2]
            built[name] = version
    pinned = {name: pin.rsplit("@", 1)[-1].removeprefix("v") for name, pin in TOOLS.items()}
    assert pinned == {name: built.get(name) for name in pinned}
    assert set(pinned) == {"golangci-lint", "govulncheck", "cosign", "syft"}
