"""`make bench`: roadbike plan on synthetic fleets of 1, 10, 100 and 300 services.

One JSON line per fleet: services, resources, seconds for the whole plan, for the program alone under
the mock monitor, for the policy analysis still running after the program ended (it runs alongside the
program), and peak RSS (this process and the pack processes). Each fleet runs in a
fresh process so that memory and warm caches do not carry over. Targets (2 cores): 100 services in
under 15 s; the whole plan at most 1.5x the program alone; time per service flat as the fleet grows.
"""

from __future__ import annotations

import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fleet import REPO, write_fleet
from components.config import PROJECT

FLEETS = (1, 10, 100, 300)


def measure(services: int) -> dict[str, object]:
    from roadbike.plan import PlanOptions, run_plan
    from roadbike.program import run_program
    from roadbike.stackfile import load_stack

    with tempfile.TemporaryDirectory() as work:
        stack_path = write_fleet(Path(work) / "Pulumi.bench.yaml", services)
        stack_file, _ = load_stack(stack_path)
        started = time.perf_counter()
        run_program(REPO, PROJECT, "bench", stack_file.pulumi_config(), stack_file.secret_keys)
        program_alone = time.perf_counter() - started
        options = PlanOptions(
            stack="bench", project_dir=REPO, config_file=stack_path, out_dir=Path(work) / "out"
        )
        result = run_plan(options, err=io.StringIO())
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    pack = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "services": services,
        "resources": len(result.run.resources),
        "plan_seconds": round(result.seconds_total, 3),
        "program_seconds": round(program_alone, 3),
        "policy_seconds": round(result.seconds_policy, 3),
        "plan_to_program": round(result.seconds_total / program_alone, 2),
        "peak_rss_mib": round(own / 1024, 1),
        "pack_peak_rss_mib": round(pack / 1024, 1),
        "mandatory_violations": sum(
            1 for v in result.policy.violations if v.enforcement_level == "mandatory"
        ),
    }


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(measure(int(sys.argv[2]))), flush=True)
        return 0
    lines = []
    for services in FLEETS:
        output = subprocess.run(
            [sys.executable, __file__, "--one", str(services)], check=True, capture_output=True, text=True
        ).stdout
        line = json.loads(output.strip().splitlines()[-1])
        lines.append(line)
        print(json.dumps(line), flush=True)
    by_size = {line["services"]: line for line in lines}
    hundred = by_size[100]
    per_service = [by_size[n]["plan_seconds"] / n for n in (100, 300)]
    verdict = {
        "target_100_services_under_15s": hundred["plan_seconds"] < 15,
        "target_plan_at_most_1.5x_program": all(
            line["plan_to_program"] <= 1.5 for line in lines if line["services"] >= 10
        ),
        "target_linear_growth": per_service[1] <= per_service[0] * 1.5,
        "seconds_per_service_100_vs_300": [round(x, 4) for x in per_service],
    }
    print(json.dumps(verdict), flush=True)
    return 0 if all(v for k, v in verdict.items() if k.startswith("target")) else 1


if __name__ == "__main__":
    sys.exit(main())
