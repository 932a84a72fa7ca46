"""The generated Prometheus rules checked with Prometheus' own parser before a plan is written.

`promtool check rules` (Debian's `prometheus` package; `$ROADBIKE_PROMTOOL` names another one) parses
every expression with the real PromQL parser and every annotation and label with the real Go template
parser, exactly as Prometheus will when it loads the rules. A rule it refuses means an input of the stack
config made it invalid: the plan stops with exit 2 naming that key (the service's SLO, or the runbook
base URL for a broken runbook_url template), instead of promtool failing later in the cluster.

The queries of the Argo Rollouts AnalysisTemplates the plan writes are checked the same way: each one, its
`{{args.NAME}}` replaced by the template's value for that argument (as Argo Rollouts substitutes them),
becomes a recording rule of a file of its own (`<service>.analysis-template.rules.yml`).

Without promtool the plan still runs and says on stderr that the rules were not checked.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from components.config import ConfigError, StackConfig, key_path
from components.yaml_text import FAST_DUMPER, FAST_LOADER
from roadbike import interrupt

PROBLEM = re.compile(
    r'^(?P<file>[^:\s]+\.rules\.yml): (?:\d+:\d+: )?group "(?P<group>[^"]*)", rule \d+, "(?P<rule>[^"]*)": '
    r"(?P<message>.*)$"
)
TIMEOUT_SECONDS = 60
ANALYSIS_SUFFIX = ".analysis-template"
ANALYSIS_GROUP = "analysis-template-"
ARGUMENT = re.compile(r"\{\{\s*args\.([A-Za-z0-9_.-]+)\s*\}\}")


def promtool() -> str | None:
    return os.environ.get("ROADBIKE_PROMTOOL") or shutil.which("promtool")


class RuleCheck:
    """One `promtool check rules` over a set of rule files, started at once and answered by `result()`:
    the plan starts it over the rules rendered from the config before the program runs, so promtool works
    on another core meanwhile. On interrupt promtool is stopped and its files removed."""

    def __init__(self, rule_files: dict[str, str]) -> None:
        self.warning: str | None = None
        self.process: subprocess.Popen[str] | None = None
        self.directory: str | None = None
        self._interrupt_key: int | None = None
        if not rule_files:
            return
        tool = promtool()
        if tool is None:
            self.warning = "promtool not found: the generated Prometheus rules were not checked (apt-get install prometheus)"
            return
        with interrupt.critical():
            self.directory = tempfile.mkdtemp(prefix="roadbike-rules-")
            self._interrupt_key = interrupt.on_interrupt(self._stop)
        try:
            paths = self._write(rule_files)
        except BaseException:  # a write that fails leaves nothing behind, then is raised as before
            self._stop()
            raise
        try:
            with interrupt.critical():
                self.process = subprocess.Popen(
                    [tool, "check", "rules", "--lint=none", *paths],
                    cwd=self.directory,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    stdin=subprocess.DEVNULL,
                )
        except OSError as exc:
            self.warning = f"promtool could not check the generated rules: {exc}"
            self._stop()

    def _write(self, rule_files: dict[str, str]) -> list[str]:
        assert self.directory is not None
        paths = []
        for path, text in sorted(rule_files.items()):
            target = Path(self.directory) / Path(path).name
            target.write_text(text, encoding="utf-8")
            paths.append(target.name)
        return paths

    def __enter__(self) -> RuleCheck:
        return self

    def __exit__(self, *_: object) -> None:
        self._stop()

    def result(self, config: StackConfig, source: str) -> str | None:
        """Raise ConfigError naming the keys behind rules promtool refuses; the warning to print, if any."""
        if self.process is None:
            return self.warning
        try:
            output, _ = self.process.communicate(timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired as exc:
            return f"promtool could not check the generated rules: {exc}"
        finally:
            self._stop()
        if self.process.returncode == 0:
            return None
        problems = _problems(config, output, source)
        if not problems:  # refused, but not in a shape we can pin on a key
            tail = "\n".join(output.strip().splitlines()[-5:])
            problems = [f"{source}: roadbike:services: the generated Prometheus rules are invalid:\n{tail}"]
        raise ConfigError(problems)

    def _stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
        if self._interrupt_key is not None:
            interrupt.forget(self._interrupt_key)
            self._interrupt_key = None


def rule_files_of(files: dict[str, str]) -> dict[str, str]:
    return {path: text for path, text in files.items() if path.endswith(".rules.yml")}


def rule_results(checks: list[RuleCheck], config: StackConfig, source: str) -> str | None:
    """Every check's answer: one ConfigError with all their problems, else the first warning."""
    problems: list[str] = []
    warnings = []
    for check in checks:
        try:
            warnings.append(check.result(config, source))
        except ConfigError as error:
            problems.extend(problem for problem in error.problems if problem not in problems)
    if problems:
        raise ConfigError(problems)
    return next((warning for warning in warnings if warning), None)


def analysis_rule_files(files: dict[str, str]) -> dict[str, str]:
    """A rule file per AnalysisTemplate the plan writes: each metric's query, its arguments substituted."""
    found = {}
    for path, text in sorted(files.items()):
        if not (path.startswith("k8s/") and "/analysistemplate-" in path and path.endswith(".yaml")):
            continue
        template = yaml.load(text, Loader=FAST_LOADER)
        service = template["metadata"]["labels"]["app.kubernetes.io/name"]
        values = {
            arg["name"]: str(arg["value"]) for arg in template["spec"].get("args", []) if "value" in arg
        }
        groups = [
            {
                "name": f"{ANALYSIS_GROUP}{service}-{metric['name']}",
                "rules": [{"record": "roadbike:analysis_gate", "expr": _substituted(metric, values)}],
            }
            for metric in template["spec"]["metrics"]
        ]
        found[f"prometheus/{service}{ANALYSIS_SUFFIX}.rules.yml"] = yaml.dump(
            {"groups": groups}, Dumper=FAST_DUMPER
        )
    return found


def _substituted(metric: dict[str, Any], values: dict[str, str]) -> str:
    query = str(metric["provider"]["prometheus"]["query"])
    return ARGUMENT.sub(lambda found: values.get(found[1], found[0]), query)


def _problems(config: StackConfig, output: str, source: str) -> list[str]:
    services = {service.name: index for index, service in enumerate(config.services)}
    found = []
    for line in output.splitlines():
        match = PROBLEM.match(line.strip())
        if match is None:
            continue
        file = match["file"].rsplit("/", 1)[-1].removesuffix(".rules.yml")
        service = file.removesuffix(ANALYSIS_SUFFIX)
        message = match["message"]
        what = f"the generated rule {match['rule']!r} of group {match['group']!r}"
        if file.endswith(ANALYSIS_SUFFIX):
            metric = match["group"].removeprefix(f"{ANALYSIS_GROUP}{service}-")
            what = f"the query of metric {metric!r} of the AnalysisTemplate {service}-sli-gate"
        if 'annotation "runbook_url"' in message and config.prometheus.runbook_base_url:
            loc: tuple[str | int, ...] = ("prometheus", "runbookBaseUrl")
        elif service in services:
            index = services[service]
            loc = ("services", index)
            for slo_index, slo in enumerate(config.services[index].slos):
                if match["group"] in (
                    f"slo-sli-{service}-{slo.name}",
                    f"slo-alerts-{service}-{slo.name}",
                    f"{ANALYSIS_GROUP}{service}-{slo.name}",
                ):
                    loc = ("services", index, "slos", slo_index, "sli")
        else:
            loc = ("services",)
        entry = f"{source}: {key_path(loc)}: makes {what} invalid (promtool: {message})"
        if entry not in found:
            found.append(entry)
    return found
