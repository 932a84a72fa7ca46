"""The floor of a plan: the same resources, with the same inputs, registered by a minimal program under
Pulumi's bare mock monitor. What the SDK itself costs for a fleet, whatever the program around it does.

`python bench/floor.py record STACK_FILE RESOURCES_JSON` runs the roadbike program once under the plan's
recording monitor and writes every resource it registered (type, name, parent, custom, inputs in engine
form). `python bench/floor.py run RESOURCES_JSON` is the floor itself, timed as a whole process: it
imports only `pulumi`, registers each recorded resource in the recorded order under its recorded parent
(`pulumi.CustomResource`, `pulumi.ProviderResource` or `pulumi.ComponentResource`, secrets as
`Output.secret`), and waits for every registration, as `pulumi.runtime.mocks` runs a program, with the
interpreter set as the plan sets it (no cyclic garbage collection, a short switch interval).
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
PROVIDER_PREFIX = "pulumi:providers:"


def write_resources(run: Any, into: Path) -> int:
    """The resources of a recorded run (roadbike.program.ProgramRun), as `run` reads them."""
    fields = ("urn", "type", "name", "parent", "custom", "inputs")
    resources = [{name: getattr(r, name) for name in fields} for r in run.resources]
    into.write_text(json.dumps({"project": run.project, "resources": resources}))
    return len(resources)


def record(stack_path: Path, into: Path) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.fleet import REPO
    from components.config import PROJECT
    from roadbike.program import run_program
    from roadbike.stackfile import load_stack

    stack_file, _ = load_stack(stack_path)
    run = run_program(REPO, PROJECT, "bench", stack_file.pulumi_config(), stack_file.secret_keys)
    return write_resources(run, into)


def _inputs(value: Any) -> Any:
    import pulumi

    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG:
            return pulumi.Output.secret(_inputs(value.get("value")))
        return {k: _inputs(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_inputs(v) for v in value]
    return value


def run(resources_path: Path) -> int:
    import pulumi
    from pulumi.runtime import mocks
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from roadbike.interpreter import batch_interpreter

    document = json.loads(resources_path.read_text())

    class EchoMocks(mocks.Mocks):
        def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
            return f"{args.name}-id", dict(args.inputs)

        def call(self, args: mocks.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
            return {}, None

    mocks.set_mocks(EchoMocks(), project=document["project"], stack="bench", preview=True)

    def program() -> None:
        by_urn: dict[str, pulumi.Resource] = {}
        for resource in document["resources"]:
            parent = by_urn.get(resource["parent"])
            opts = pulumi.ResourceOptions(parent=parent)
            kind, name = resource["type"], resource["name"]
            if kind.startswith(PROVIDER_PREFIX):
                created: pulumi.Resource = pulumi.ProviderResource(
                    kind.removeprefix(PROVIDER_PREFIX), name, _inputs(resource["inputs"]), opts
                )
            elif resource["custom"]:
                created = pulumi.CustomResource(kind, name, _inputs(resource["inputs"]), opts)
            else:
                created = pulumi.ComponentResource(kind, name, None, opts)
            by_urn[resource["urn"]] = created

    with batch_interpreter():  # the interpreter as the plan sets it (roadbike/interpreter.py)
        _sync_await(run_pulumi_func(program))
    return len(document["resources"])


def _peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "record":
        print(record(Path(sys.argv[2]), Path(sys.argv[3])))
        return 0
    if len(sys.argv) == 3 and sys.argv[1] == "run":
        count = run(Path(sys.argv[2]))
        seconds = time.perf_counter() - STARTED
        print(
            json.dumps({"resources": count, "seconds": round(seconds, 3), "peak_mib": round(_peak_mib(), 1)})
        )
        return 0
    print("usage: floor.py record STACK_FILE RESOURCES_JSON | floor.py run RESOURCES_JSON", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
