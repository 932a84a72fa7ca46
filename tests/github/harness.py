"""Runs a generated GitHub Actions workflow on this machine: each job's `run:` text as the workflow
writes it (its `env`, `defaults.run` and `working-directory`), and each `uses:` step through its local
equivalent in `LOCAL_ACTIONS`. Nothing of a script is retyped; an action without a local equivalent, a
failing step, or a step whose command is not installed stops the run with `HarnessError` naming the
job and the step.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

from tests.helpers import image_layer

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
STEP_TIMEOUT = 900.0


class HarnessError(AssertionError):
    """A workflow step failed, or could not be run here."""


@dataclass
class Step:
    """What a local equivalent of an action gets: the job's workspace and environment, the step's `with:`."""

    job: str
    name: str
    inputs: dict[str, str]
    workspace: Path
    env: dict[str, str]
    run: WorkflowRun


Action = Callable[[Step], Mapping[str, str]]


@dataclass
class WorkflowRun:
    """One run of a workflow: the source tree checkout copies, the tool PATH, what the run produced."""

    workflow: dict[str, Any]
    source: Path
    root: Path
    actions: Mapping[str, Action]
    path: Sequence[Path] = ()
    github: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    vars: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    job_outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    logs: dict[tuple[str, str], str] = field(default_factory=dict)
    summaries: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    def workspace(self, job: str) -> Path:
        return self.root / "jobs" / job / "workspace"

    # --- expressions ---------------------------------------------------------------------------

    def evaluate(self, text: str, where: str, steps: Mapping[str, Mapping[str, str]]) -> str:
        """Replace each `${{ context.path }}` (the only expressions the generated workflows use)."""

        def value(match: re.Match[str]) -> str:
            expression = match.group(1)
            parts = expression.split(".")
            context: Any
            if parts[0] == "github" and len(parts) == 2:
                context = self.github.get(parts[1])
            elif parts[0] in ("secrets", "vars") and len(parts) == 2:
                context = (self.secrets if parts[0] == "secrets" else self.vars).get(parts[1])
            elif parts[0] == "needs" and len(parts) == 4 and parts[2] == "outputs":
                context = self.job_outputs.get(parts[1], {}).get(parts[3])
            elif parts[0] == "steps" and len(parts) == 4 and parts[2] == "outputs":
                context = steps.get(parts[1], {}).get(parts[3])
            else:
                raise HarnessError(f"{where}: expression ${{{{ {expression} }}}} is not supported here")
            if context is None:
                raise HarnessError(f"{where}: ${{{{ {expression} }}}} has no value")
            return str(context)

        return EXPRESSION.sub(value, text)

    # --- jobs ------------------------------------------------------------------------------------

    def job_order(self, only: Sequence[str] | None = None) -> list[str]:
        jobs = self.workflow["jobs"]
        graph = {name: set(job.get("needs", [])) for name, job in jobs.items()}
        order = list(TopologicalSorter(graph).static_order())
        if only is None:
            return order
        unknown = set(only) - set(jobs)
        if unknown:
            raise HarnessError(f"no job {sorted(unknown)} in the workflow")
        return [name for name in order if name in only]

    def run_jobs(self, only: Sequence[str] | None = None) -> None:
        for name in self.job_order(only):
            missing = [
                need for need in self.workflow["jobs"][name].get("needs", []) if need not in self.job_outputs
            ]
            if missing:
                raise HarnessError(f"job {name}: needs {missing}, which did not run")
            self.run_job(name)

    def run_job(self, name: str) -> dict[str, str]:
        job = self.workflow["jobs"][name]
        check_keys(job, JOB_KEYS, f"job {name}")
        check_condition(job.get("if"), f"job {name}")
        started = time.monotonic()
        workspace = self.workspace(name)
        shutil.rmtree(workspace.parent, ignore_errors=True)
        workspace.mkdir(parents=True)
        temp = workspace.parent / "runner-temp"
        temp.mkdir()
        summary = workspace.parent / "step-summary.md"
        summary.touch()
        defaults = {
            **self.workflow.get("defaults", {}).get("run", {}),
            **job.get("defaults", {}).get("run", {}),
        }
        steps_outputs: dict[str, dict[str, str]] = {}
        base_env = {
            "PATH": os.pathsep.join([*map(str, self.path), "/usr/local/bin", "/usr/bin", "/bin"]),
            "HOME": os.environ.get("HOME", str(workspace.parent)),
            "LANG": "C.UTF-8",
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_JOB": name,
            "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_STEP_SUMMARY": str(summary),
            "RUNNER_TEMP": str(temp),
            "RUNNER_OS": "Linux",
            **{f"GITHUB_{key.upper()}": value for key, value in self.github.items()},
            **self.env,
        }
        for key in ("GOPATH", "GOMODCACHE", "GOCACHE", "GOFLAGS", "GOPROXY", "GOSUMDB", "GOTOOLCHAIN"):
            if key in os.environ and key not in base_env:
                base_env[key] = os.environ[key]
        job_env = {
            k: self.evaluate(str(v), f"job {name}", {})
            for k, v in {**self.workflow.get("env", {}), **job.get("env", {})}.items()
        }
        for index, step in enumerate(job["steps"]):
            label = step.get("name") or step.get("id") or f"#{index + 1}"
            where = f"job {name}, step {label!r}"
            check_keys(step, STEP_KEYS, where)
            check_condition(step.get("if"), where)
            env = {**base_env, **job_env}
            env.update(
                {k: self.evaluate(str(v), where, steps_outputs) for k, v in step.get("env", {}).items()}
            )
            if "uses" in step:
                action = str(step["uses"]).split("@")[0]
                local = self.actions.get(action)
                if local is None:
                    raise HarnessError(
                        f"{where}: uses {action}, which has no local equivalent in LOCAL_ACTIONS"
                    )
                inputs = {
                    k: self.evaluate(str(v), where, steps_outputs) for k, v in step.get("with", {}).items()
                }
                try:
                    outputs = dict(local(Step(name, str(label), inputs, workspace, env, self)))
                except HarnessError as error:
                    raise HarnessError(f"{where}: {action}: {error}") from error
            else:
                outputs = self._run_script(step, where, name, workspace, env, defaults, steps_outputs)
            if "id" in step:
                steps_outputs[step["id"]] = outputs
        self.summaries[name] = summary.read_text()
        outputs = {
            k: self.evaluate(str(v), f"job {name}, outputs", steps_outputs)
            for k, v in job.get("outputs", {}).items()
        }
        self.job_outputs[name] = outputs
        self.seconds[name] = time.monotonic() - started
        return outputs

    def _run_script(
        self,
        step: Mapping[str, Any],
        where: str,
        job: str,
        workspace: Path,
        env: dict[str, str],
        defaults: Mapping[str, Any],
        steps_outputs: Mapping[str, Mapping[str, str]],
    ) -> dict[str, str]:
        shell = step.get("shell", defaults.get("shell", "bash"))
        if shell != "bash":
            raise HarnessError(f"{where}: shell {shell!r}: only bash is run here")
        script = self.evaluate(str(step["run"]), where, steps_outputs)
        directory = workspace / str(step.get("working-directory", defaults.get("working-directory", ".")))
        output = workspace.parent / "github-output"
        output.write_text("")
        script_file = workspace.parent / "step.sh"
        script_file.write_text(script)
        env = {**env, "GITHUB_OUTPUT": str(output)}
        # GitHub's `shell: bash`: bash --noprofile --norc -eo pipefail {0}
        try:
            result = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_file)],
                cwd=directory,
                env=env,
                capture_output=True,
                text=True,
                timeout=STEP_TIMEOUT,
            )
        except subprocess.TimeoutExpired as error:
            raise HarnessError(f"{where}: still running after {STEP_TIMEOUT:g}s") from error
        log = result.stdout + result.stderr
        self.logs[(job, str(step.get("name", "")))] = log
        if result.returncode == 127:
            missing = re.findall(r"(\S+): command not found", log)
            raise HarnessError(
                f"{where}: needs {', '.join(missing) or 'a command'}, which is not installed:\n{log}"
            )
        if result.returncode != 0:
            raise HarnessError(f"{where}: exit {result.returncode}:\n{log}")
        return parse_outputs(output.read_text())


# What the harness honours of a job and of a step (runs-on, permissions, environment, concurrency and the
# timeout are GitHub's scheduling: each step here is bounded by STEP_TIMEOUT). Anything else, such as
# `strategy`, `services` or `continue-on-error`, fails the run rather than being ignored.
JOB_KEYS = frozenset(
    {"name", "needs", "runs-on", "environment", "permissions", "timeout-minutes", "concurrency", "outputs"}
    | {"steps", "defaults", "env", "if"}
)
STEP_KEYS = frozenset({"name", "id", "env", "run", "uses", "with", "if", "shell", "working-directory"})


def check_keys(entry: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    unknown = sorted(set(entry) - known)
    if unknown:
        raise HarnessError(f"{where}: {', '.join(unknown)} is not supported here")


# Conditions that hold for every job and step the harness reaches: a run stops at its first failure.
ALWAYS_TRUE_CONDITIONS = ("always()", "success()")


def check_condition(condition: Any, where: str) -> None:
    """An `if:` the harness cannot decide fails the run rather than being ignored."""
    if condition is None:
        return
    text = str(condition).strip()
    match = EXPRESSION.fullmatch(text)
    if (match.group(1) if match else text) not in ALWAYS_TRUE_CONDITIONS:
        raise HarnessError(f"{where}: if: {text!r} is not supported here")


def parse_outputs(text: str) -> dict[str, str]:
    """A `$GITHUB_OUTPUT` file: `name=value` lines and `name<<DELIMITER` blocks."""
    outputs: dict[str, str] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            block = []
            while lines[index] != delimiter:
                block.append(lines[index])
                index += 1
            index += 1
            outputs[name] = "\n".join(block)
        elif "=" in line:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


# --- the local equivalents of the actions ------------------------------------------------------------


def checkout(step: Step) -> dict[str, str]:
    """actions/checkout: a copy of the source tree (without build output) into the job's workspace."""
    shutil.copytree(
        step.run.source,
        step.workspace,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("dist", "coverage.out", "coverage.txt"),
    )
    return {}


def setup_go(step: Step) -> dict[str, str]:
    """actions/setup-go: the local Go, which must be on the tool PATH (it is at least `go-version`)."""
    go = shutil.which("go", path=step.env["PATH"])
    if go is None:
        raise HarnessError("go is not on PATH")
    local = subprocess.run(
        [go, "env", "GOVERSION"], capture_output=True, text=True, check=True
    ).stdout.strip()
    wanted = tuple(int(p) for p in step.inputs["go-version"].split("."))
    have = tuple(int(p) for p in re.findall(r"\d+", local)[:2])
    if have < wanted[:2]:
        raise HarnessError(f"local {local} is older than go-version {step.inputs['go-version']}")
    return {"go-version": local.removeprefix("go")}


def upload_artifact(step: Step) -> dict[str, str]:
    """actions/upload-artifact: the files into `artifacts/<name>/`; `if-no-files-found: error` is kept."""
    target = step.run.artifacts / step.inputs["name"]
    target.mkdir(parents=True, exist_ok=True)
    found = 0
    for entry in filter(None, (line.strip() for line in step.inputs["path"].splitlines())):
        source = step.workspace / entry
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
            found += sum(1 for p in source.rglob("*") if p.is_file())
        elif source.is_file():
            shutil.copy2(source, target / source.name)
            found += 1
    if not found and step.inputs.get("if-no-files-found", "warn") == "error":
        raise HarnessError(f"no files found at {step.inputs['path']!r}")
    return {"artifact-id": step.inputs["name"]}


def tool_version_check(step: Step, tool: str, wanted: str, version_args: Sequence[str]) -> str:
    """The tool on the PATH at exactly the version the workflow pins."""
    binary = shutil.which(tool, path=step.env["PATH"])
    if binary is None:
        raise HarnessError(f"{tool} is not installed: run `make go-tools`")
    result = subprocess.run([binary, *version_args], capture_output=True, text=True, timeout=60)
    reported = result.stdout + result.stderr
    if wanted.removeprefix("v") not in reported:
        raise HarnessError(f"{tool} reports {reported.strip()!r}, the workflow pins {wanted}")
    return binary


def golangci_lint(step: Step) -> dict[str, str]:
    """golangci/golangci-lint-action: `golangci-lint run` with the pinned `version`, built from its module."""
    binary = tool_version_check(step, "golangci-lint", step.inputs["version"], ["version"])
    directory = step.workspace / step.inputs.get("working-directory", ".")
    result = subprocess.run(
        [binary, "run", *step.inputs.get("args", "").split()],
        cwd=directory,
        env=step.env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
    )
    step.run.logs[(step.job, step.name)] = result.stdout + result.stderr
    if result.returncode != 0:
        raise HarnessError(f"golangci-lint run: exit {result.returncode}:\n{result.stdout}{result.stderr}")
    return {}


# --- the image actions: the registry is real (crane, cosign, syft talk to it), the Docker engine is not here --


def run_tool(step: Step, command: Sequence[str], stdin: str | None = None) -> str:
    """A tool of the job's PATH with the job's environment; its output is the step's log, a failure is the step's."""
    binary = shutil.which(command[0], path=step.env["PATH"])
    if binary is None:
        raise HarnessError(f"{command[0]} is not installed: run `make go-tools`")
    result = subprocess.run(
        [binary, *command[1:]],
        cwd=step.workspace,
        env=step.env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
    )
    log = result.stdout + result.stderr
    step.run.logs[(step.job, step.name)] = step.run.logs.get((step.job, step.name), "") + log
    if result.returncode != 0:
        raise HarnessError(
            f"{command[0]} {command[1] if len(command) > 1 else ''}: exit {result.returncode}:\n{log}"
        )
    return result.stdout.strip()


def known_inputs(step: Step, accepted: set[str]) -> None:
    """An input the local equivalent does not honour fails the step rather than being ignored."""
    unknown = sorted(set(step.inputs) - accepted)
    if unknown:
        raise HarnessError(f"input {', '.join(unknown)} has no local equivalent")


def docker_login(step: Step) -> dict[str, str]:
    """docker/login-action: `crane auth login` into the job's `DOCKER_CONFIG`, which crane, cosign and syft
    read; the password goes on stdin."""
    known_inputs(step, {"registry", "username", "password"})
    if "DOCKER_CONFIG" not in step.env:
        raise HarnessError("the run sets no DOCKER_CONFIG: the login would write the user's ~/.docker")
    run_tool(
        step,
        [
            "crane",
            "auth",
            "login",
            step.inputs["registry"],
            "-u",
            step.inputs["username"],
            "--password-stdin",
        ],
        stdin=step.inputs["password"],
    )
    return {}


def setup_buildx(step: Step) -> dict[str, str]:
    """docker/setup-buildx-action: the image equivalent below needs no builder, only crane."""
    known_inputs(step, {"cache-binary"})
    run_tool(step, ["crane", "version"])
    return {}


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _key_values(text: str, where: str) -> dict[str, str]:
    pairs = {}
    for line in _lines(text):
        if "=" not in line:
            raise HarnessError(f"{where}: {line!r} is not KEY=VALUE")
        key, value = line.split("=", 1)
        pairs[key] = value
    return pairs


def build_push(step: Step) -> dict[str, str]:
    """docker/build-push-action, as ko builds a Go image: the Go main package at `context`, static for the
    one `platforms` entry (cross-compiled, no QEMU), with `-X main.version=$VERSION -X main.commit=$COMMIT`
    from `build-args`, as the only layer of an empty OCI image whose entrypoint is the binary; `labels` and
    the platform set with `crane mutate`, which pushes it by digest to the `name=` of `outputs`. What is not
    reproduced: the Dockerfile's own build (there is no Docker engine here); it must exist at `context` and
    declare an ARG for each build arg, or the step fails as the action would. Outputs `digest`, as the
    action does."""
    known_inputs(
        step, {"context", "platforms", "build-args", "labels", "outputs", "provenance", "sbom", "no-cache"}
    )
    if step.inputs.get("provenance", "False") != "False" or step.inputs.get("sbom", "False") != "False":
        raise HarnessError("no per-platform provenance or SBOM attestations are made here: set both false")
    platforms = _lines(step.inputs["platforms"].replace(",", "\n"))
    if len(platforms) != 1:
        raise HarnessError(f"platforms {platforms}: one platform per image job is built here")
    [platform] = platforms
    outputs = _key_values(step.inputs["outputs"].replace(",", "\n"), "outputs")
    if (
        outputs.get("type") != "image"
        or outputs.get("push") != "true"
        or outputs.get("push-by-digest") != "true"
    ):
        raise HarnessError(
            f"outputs {step.inputs['outputs']!r}: only an image pushed by digest is built here"
        )
    repository = outputs["name"]
    name = repository.rsplit("/", 1)[-1]
    args = _key_values(step.inputs.get("build-args", ""), "build-args")
    dockerfile_args(step.workspace / step.inputs.get("context", "."), set(args))
    goos, goarch = platform.split("/")
    out = step.workspace.parent / "image" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    ldflags = f"-s -w -X main.version={args.get('VERSION', '')} -X main.commit={args.get('COMMIT', '')}"
    build_env = {**step.env, "CGO_ENABLED": "0", "GOOS": goos, "GOARCH": goarch}
    go = shutil.which("go", path=step.env["PATH"])
    if go is None:
        raise HarnessError("go is not on PATH")
    result = subprocess.run(
        [go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(out), "."],
        cwd=step.workspace / step.inputs.get("context", "."),
        env=build_env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
    )
    if result.returncode != 0:
        raise HarnessError(f"go build: exit {result.returncode}:\n{result.stdout}{result.stderr}")
    # A staging tag in a repository of its own: the service's repository only gets the image by digest.
    staging = f"{repository.rsplit('/', 2)[0]}/harness-staging/{name}:{goos}-{goarch}"
    run_tool(step, ["crane", "append", "--oci-empty-base", "-f", str(image_layer(out, name)), "-t", staging])
    mutate = ["crane", "mutate", staging, "--repo", repository, "--set-platform", platform]
    mutate += ["--entrypoint", f"/{name}"]
    for key, value in _key_values(step.inputs.get("labels", ""), "labels").items():
        mutate += ["--label", f"{key}={value}"]
    pushed = run_tool(step, mutate)
    if not pushed.startswith(f"{repository}@sha256:"):
        raise HarnessError(f"crane mutate pushed {pushed!r}, not {repository}@<digest>")
    return {"digest": pushed.split("@", 1)[1], "imageid": pushed.split("@", 1)[1]}


def dockerfile_args(context: Path, build_args: set[str]) -> None:
    """The context's Dockerfile exists and declares every build arg (an undeclared one is ignored by the
    build, which would leave the image without its version or commit)."""
    dockerfile = context / "Dockerfile"
    if not dockerfile.is_file():
        raise HarnessError(f"no Dockerfile in the build context {context.name}/: the image cannot be built")
    declared = {
        name.split("=", 1)[0]
        for line in dockerfile.read_text().splitlines()
        if line.strip().upper().startswith("ARG ")
        for name in line.split()[1:]
    }
    if build_args - declared:
        raise HarnessError(
            f"{dockerfile.name} declares no ARG for build args {sorted(build_args - declared)}"
        )


def cosign_installer(step: Step) -> dict[str, str]:
    """sigstore/cosign-installer: cosign at exactly `cosign-release`, built from its module."""
    known_inputs(step, {"cosign-release"})
    tool_version_check(step, "cosign", step.inputs["cosign-release"], ["version"])
    return {}


def sbom_action(step: Step) -> dict[str, str]:
    """anchore/sbom-action: syft at exactly `syft-version` (built from its module) scans `image` from the
    registry (the `registry:` scheme and `SYFT_REGISTRY_AUTH_USERNAME`/`_PASSWORD` from `registry-username`/
    `-password`, as the action does with credentials; `SYFT_REGISTRY_AUTH_AUTHORITY`, the image's host, is
    set here) and writes `format` to `output-file`; it uploads nothing."""
    known_inputs(
        step,
        {
            "image",
            "format",
            "output-file",
            "syft-version",
            "upload-artifact",
            "upload-release-assets",
            "registry-username",
            "registry-password",
        },
    )
    if step.inputs.get("upload-artifact") != "False" or step.inputs.get("upload-release-assets") != "False":
        raise HarnessError(
            "uploads are not reproduced here: set upload-artifact and upload-release-assets false"
        )
    tool_version_check(step, "syft", step.inputs["syft-version"], ["version"])
    image = step.inputs["image"]
    auth = {
        "SYFT_REGISTRY_AUTH_AUTHORITY": image.split("/", 1)[0],
        "SYFT_REGISTRY_AUTH_USERNAME": step.inputs["registry-username"],
        "SYFT_REGISTRY_AUTH_PASSWORD": step.inputs["registry-password"],
        "SYFT_CHECK_FOR_APP_UPDATE": "false",
    }
    output = step.inputs["output-file"]
    scan = Step(step.job, step.name, step.inputs, step.workspace, {**step.env, **auth}, step.run)
    run_tool(scan, ["syft", "scan", f"registry:{image}", "-o", f"{step.inputs['format']}={output}"])
    if not (step.workspace / output).is_file():
        raise HarnessError(f"syft wrote no {output}")
    return {}


def attest_build_provenance(step: Step) -> dict[str, str]:
    """actions/attest-build-provenance needs GitHub's OIDC token, Fulcio and GitHub's attestation API, none
    of which can run here: the subject it would attest must be in the registry at that digest, and the
    step is logged as not reproduced."""
    known_inputs(step, {"subject-name", "subject-digest", "push-to-registry"})
    subject = f"{step.inputs['subject-name']}@{step.inputs['subject-digest']}"
    found = run_tool(step, ["crane", "digest", subject])
    if found != step.inputs["subject-digest"]:
        raise HarnessError(f"{subject} resolves to {found}")
    step.run.logs[(step.job, step.name)] += (
        f"not reproduced here (GitHub OIDC and attestation API): {subject}\n"
    )
    return {}


# Commands a GitHub-hosted runner image provides that are not on this machine, each as a script in
# runner-tools/ (put it on the run's PATH): `docker buildx imagetools create|inspect` through crane.
RUNNER_TOOLS = Path(__file__).parent / "runner-tools"


LOCAL_ACTIONS: dict[str, Action] = {
    "actions/checkout": checkout,
    "actions/setup-go": setup_go,
    "actions/upload-artifact": upload_artifact,
    "golangci/golangci-lint-action": golangci_lint,
    "docker/setup-buildx-action": setup_buildx,
    "docker/login-action": docker_login,
    "docker/build-push-action": build_push,
    "sigstore/cosign-installer": cosign_installer,
    "anchore/sbom-action": sbom_action,
    "actions/attest-build-provenance": attest_build_provenance,
}
