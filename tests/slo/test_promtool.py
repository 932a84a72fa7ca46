"""The rendered rules, promtool unit tests and Alertmanager config of every stack, through the real tools.

`roadbike plan` writes them for each committed stack; promtool 2.42 checks and unit-tests them and amtool
0.25 checks the Alertmanager config. The unit tests run in parallel, one promtool process per file.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import ConfigError, Slo, StackConfig
from components.naming import service_names
from components.slo.analysis import analysis_template
from components.slo.files import slo_artifacts
from components.slo.promtool_tests import synthetic_sli
from components.slo.rules import sli_queries
from components.slo.selectors import Selector, parse_selector
from roadbike import rulecheck
from roadbike.rulecheck import RuleCheck, analysis_rule_files, rule_files_of, rule_results
from tests.helpers import STACKS, parse, require_tool, stack_raw

PROMTOOL_TIMEOUT = 300


@dataclass(frozen=True)
class Tool:
    args: list[str]
    returncode: int
    output: str


def run_all(commands: list[tuple[list[str], Path]]) -> list[Tool]:
    """Runs the commands at once, each in its directory (promtool is single-threaded), and waits for all."""
    processes = [
        subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for args, cwd in commands
    ]
    results = []
    for (args, _), process in zip(commands, processes, strict=True):
        output, _ = process.communicate(timeout=PROMTOOL_TIMEOUT)
        results.append(Tool(args, process.returncode, output))
    return results


@pytest.fixture(scope="module")
def plan_dirs(plans: dict[str, tuple[Path, subprocess.CompletedProcess[str]]]) -> dict[str, Path]:
    for _out, result in plans.values():
        assert result.returncode == 0, result.stdout + result.stderr
    return {stack: out for stack, (out, _) in plans.items()}


@pytest.fixture(scope="module")
def unit_tests(plan_dirs: dict[str, Path]) -> dict[Path, Tool]:
    """`promtool test rules` on every generated test file of every stack, all in parallel."""
    promtool = require_tool("promtool")
    files = sorted(f for plan in plan_dirs.values() for f in (plan / "prometheus").glob("*.test.yml"))
    assert files, "the plans wrote no promtool tests"
    results = run_all([([promtool, "test", "rules", f.name], f.parent) for f in files])
    return dict(zip(files, results, strict=True))


@pytest.mark.parametrize("stack", STACKS)
def test_every_rules_file_passes_promtool_check_rules(plan_dirs: dict[str, Path], stack: str) -> None:
    promtool = require_tool("promtool")
    files = sorted((plan_dirs[stack] / "prometheus").glob("*.rules.yml"))
    services_with_slos = [s["name"] for s in stack_raw(stack)["services"] if s.get("slos")]
    assert [f.name for f in files] == sorted(f"{s}.rules.yml" for s in services_with_slos)
    result = subprocess.run(
        [promtool, "check", "rules", "--lint-fatal", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files)


@pytest.mark.parametrize("stack", STACKS)
def test_every_generated_unit_test_passes(
    plan_dirs: dict[str, Path], unit_tests: dict[Path, Tool], stack: str
) -> None:
    files = sorted((plan_dirs[stack] / "prometheus").glob("*.test.yml"))
    services = sorted(s["name"] for s in stack_raw(stack)["services"] if s.get("slos"))
    assert [f.name for f in files] == sorted(
        name for s in services for name in (f"{s}.test.yml", f"{s}.long.test.yml")
    )
    for f in files:
        tool = unit_tests[f]
        assert tool.returncode == 0, f"{f.name}:\n{tool.output}"
        assert "SUCCESS" in tool.output
        document = yaml.safe_load(f.read_text())
        service = f.name.removesuffix(".test.yml").removesuffix(".long")
        assert document["rule_files"] == [f"{service}.rules.yml"]
        assert document["tests"], f.name


@pytest.mark.parametrize("stack", STACKS)
def test_alertmanager_config_passes_amtool(plan_dirs: dict[str, Path], stack: str) -> None:
    amtool = require_tool("amtool")
    config = plan_dirs[stack] / "prometheus" / "alertmanager.yml"
    result = subprocess.run([amtool, "check-config", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 inhibit rules" in result.stdout and "2 receivers" in result.stdout
    for severity, receiver in (("page", "slo-page"), ("ticket", "slo-ticket")):
        routed = subprocess.run(
            [
                amtool,
                "config",
                "routes",
                "test",
                f"--config.file={config}",
                f"--verify.receivers={receiver}",
                f"severity={severity}",
                "service=go-http-server",
                "slo=availability",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert routed.returncode == 0, routed.stdout + routed.stderr


@pytest.mark.parametrize("stack", STACKS)
def test_rules_file_is_the_prometheus_rule_and_the_outputs_name_its_groups(
    plan_dirs: dict[str, Path], stack: str
) -> None:
    plan = plan_dirs[stack]
    outputs = json.loads((plan / "plan.json").read_text())["outputs"]["services"]
    namespace = stack_raw(stack)["kubernetes"]["namespace"]
    for rules_file in (plan / "prometheus").glob("*.rules.yml"):
        service = rules_file.name.removesuffix(".rules.yml")
        groups = yaml.safe_load(rules_file.read_text())["groups"]
        manifest = yaml.safe_load(
            (plan / "k8s" / namespace / f"prometheusrule-{service}-slo.yaml").read_text()
        )
        assert _canonical(groups) == _canonical(manifest["spec"]["groups"])
        assert outputs[service]["slo"]["ruleGroups"] == [g["name"] for g in groups]


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True)


def test_unit_tests_fail_when_the_page_threshold_is_wrong(plan_dirs: dict[str, Path], tmp_path: Path) -> None:
    """The generated tests can fail: a page that needs twice the budget spent does not fire in time."""
    promtool = require_tool("promtool")
    source = plan_dirs[STACKS[0]] / "prometheus"
    rules = (source / "orders-api.rules.yml").read_text()
    page = "* 60 / 43200 / 0.001 > 0.02\n"
    assert page in rules
    (tmp_path / "orders-api.rules.yml").write_text(rules.replace(page, page.replace("0.02", "0.04")))
    (tmp_path / "orders-api.test.yml").write_text((source / "orders-api.test.yml").read_text())
    result = subprocess.run(
        [promtool, "test", "rules", "orders-api.test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "OrdersApiAvailabilityBurnRatePage" in result.stdout + result.stderr


def test_unusual_slis_render_rules_and_tests_that_pass(tmp_path: Path) -> None:
    """Other selectors and objectives: separate error counters over 28 days with a minimum of events,
    regex codes, 99.99%, a 1 s bucket (spelled `1` by Go, `1.0` by Prometheus 3)."""
    promtool = require_tool("promtool")
    raw = stack_raw("dev")
    raw["services"][0]["slos"] = [
        {
            "name": "errors",
            "objective": 99.99,
            "sli": {"type": "ratio", "errors": "app_errors_total", "total": "app_requests_total"},
            "period": "28d",
            "minEvents": 1000,
        },
        {
            "name": "grpc",
            "objective": 99.2,
            "sli": {
                "type": "ratio",
                "errors": 'grpc_server_handled_total{grpc_code=~"Unavailable|Internal",grpc_service="shop.Orders"}',
                "total": 'grpc_server_handled_total{grpc_service="shop.Orders"}',
            },
        },
        {
            "name": "slow",
            "objective": 99,
            "sli": {"type": "latency", "histogram": "rpc_duration_seconds", "thresholdSeconds": 1},
        },
    ]
    files = slo_artifacts(parse(raw))
    for relative, text in files.items():
        (tmp_path / Path(relative).name).write_text(text)
    tests = files["prometheus/go-http-server.test.yml"]
    assert "slow: buckets spelled 0.9999999999999999, 1, 1.0, 1.00, 1.0000000000000002 all count" in tests
    assert "errors: fewer than 1000 requests per window fire nothing" in tests
    assert "slo:sli_error:ratio_rate28d" in files["prometheus/go-http-server.rules.yml"]
    checked = subprocess.run(
        [promtool, "check", "rules", "--lint-fatal", "go-http-server.rules.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for tested in run_all(
        [
            ([promtool, "test", "rules", name], tmp_path)
            for name in ("go-http-server.test.yml", "go-http-server.long.test.yml")
        ]
    ):
        assert tested.returncode == 0, tested.output


# Label regexes whose example series the generator makes from the regex's parse tree (never by running
# the regex in Python): promtool, with Go's RE2, says whether each series is selected as it should be.
EXAMPLE_SLIS = [
    ('http_requests_total{code=~"5.."}', "http_requests_total"),
    ('http_requests_total{code=~"5..|429"}', 'http_requests_total{handler=~"/api(/v[0-9])?"}'),
    ('http_requests_total{code=~"(?:4|5)\\\\d{2}"}', "http_requests_total"),
    ('http_requests_total{code!~"[23].."}', "http_requests_total"),
    ('grpc_server_handled_total{grpc_code=~"Unavailable|Deadline(Exceeded)?"}', "grpc_server_handled_total"),
    (
        'grpc_server_handled_total{grpc_code=~"[[:upper:]][a-z]+",grpc_code!="OK"}',
        "grpc_server_handled_total",
    ),
    ('app_errors_total{kind=~"[^a-z].*"}', 'app_requests_total{route=~".+"}'),
]


def _selection_tests(config: Any, errors: str, total: str, spoil: bool) -> dict[str, Any]:
    """A promtool test: each synthetic series selected by the SLI's selectors as its role says (the bad
    one by the errors selector, every one by the total); `spoil` drops the labels the `=~` regexes chose."""
    objective = Slo.model_validate(
        {"name": "a", "objective": 99, "sli": {"type": "ratio", "errors": errors, "total": total}}
    )
    queries = sli_queries(service_names(config, config.services[0]), objective)
    assert queries.bad is not None
    series = synthetic_sli(queries).series
    regex_labels = {m.name for s in (queries.bad, queries.total) for m in s.matchers if m.op == "=~"}
    inputs = []
    for text, _ in series:
        selector = parse_selector(text)
        labels = {m.name: m.value for m in selector.matchers if not (spoil and m.name in regex_labels)}
        inputs.append({"series": Selector(selector.metric).with_labels(labels).render(), "values": "1x5"})
    bad = sum(1 for _, role in series if role == "bad")
    same_metric = queries.bad.metric == queries.total.metric
    expected = [(queries.bad, bad), (queries.total, len(series) if same_metric else 1)]
    return {
        "tests": [
            {
                "interval": "1m",
                "input_series": inputs,
                "promql_expr_test": [
                    {
                        "expr": f"count({s.render()})",
                        "eval_time": "1m",
                        "exp_samples": [{"labels": "{}", "value": n}],
                    }
                    for s, n in expected
                ],
            }
        ]
    }


def test_example_series_are_selected_by_the_sli_selectors_as_promtool_matches_them(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    config = parse(stack_raw("dev"))
    commands = []
    for index, (errors, total) in enumerate(EXAMPLE_SLIS):
        for spoil in (False, True):
            name = f"{index}-{'spoiled' if spoil else 'example'}.test.yml"
            (tmp_path / name).write_text(yaml.safe_dump(_selection_tests(config, errors, total, spoil)))
            commands.append(([promtool, "test", "rules", name], tmp_path))
    results = run_all(commands)
    for tool, (errors, total) in zip(results[0::2], EXAMPLE_SLIS, strict=True):
        assert tool.returncode == 0, f"{errors} / {total}: {tool.output}"
    # Without the values the regexes chose, the same test fails (each of these SLIs has an `=~`, but the one
    # with `!~` only).
    for tool, (errors, total) in zip(results[1::2], EXAMPLE_SLIS, strict=True):
        spoiled = tool.returncode != 0 and "count(" in tool.output
        assert spoiled == ("=~" in errors + total), f"{errors} / {total}: {tool.output}"


def _analysis_files(config: Any, index: int, query_edit: Callable[[str], str]) -> dict[str, str]:
    """The SLO rule files and a service's AnalysisTemplate as the plan writes them, its first query edited."""
    service = config.services[index]
    template = analysis_template(config, service)
    metric = template["spec"]["metrics"][0]["provider"]["prometheus"]
    metric["query"] = query_edit(metric["query"])
    name = template["metadata"]["name"]
    path = f"k8s/{template['metadata']['namespace']}/analysistemplate-{name}.yaml"
    return {**slo_artifacts(config), path: yaml.safe_dump(template)}


def check_rule_files(config: StackConfig, files: dict[str, str], source: str) -> str | None:
    """Every rule file among `files` and those of their AnalysisTemplates in one promtool check."""
    with RuleCheck(rule_files_of(files) | analysis_rule_files(files)) as check:
        return check.result(config, source)


def test_analysis_template_queries_are_checked_by_promtool_with_their_arguments_substituted() -> None:
    require_tool("promtool")
    config = parse(stack_raw("dev"))
    files = _analysis_files(config, 1, lambda query: query)
    [(path, text)] = analysis_rule_files(files).items()
    assert path == "prometheus/orders-api.analysis-template.rules.yml"
    assert 'rollouts_pod_template_hash=~".*"' in text and "{{" not in text
    assert check_rule_files(config, files, "stacks/Pulumi.dev.yaml") is None
    broken = _analysis_files(config, 1, lambda query: query.replace("[5m]", "[5m", 1))
    with pytest.raises(ConfigError) as refused:
        check_rule_files(config, broken, "stacks/Pulumi.dev.yaml")
    [problem] = refused.value.problems
    assert problem.startswith(
        "stacks/Pulumi.dev.yaml: roadbike:services[1].slos[0].sli: makes the query of metric 'availability' "
        "of the AnalysisTemplate orders-api-sli-gate invalid (promtool: "
    ), problem


def test_two_checks_at_once_answer_together_and_leave_nothing_behind() -> None:
    """The plan checks the config's rules while the program runs and the AnalysisTemplates' after it: a
    problem in each is reported together, and promtool and its files are gone once a check is closed,
    read or not."""
    require_tool("promtool")
    config = parse(stack_raw("dev"))
    broken = _analysis_files(config, 1, lambda query: query.replace("[5m]", "[5m", 1))
    rules = {path: text for path, text in broken.items() if path.endswith(".rules.yml")}
    [(first, text)] = list(rules.items())[:1]
    rules[first] = text.replace("expr: ", "expr: sum(", 1)
    with RuleCheck(rules) as early, RuleCheck(analysis_rule_files(broken)) as late:
        assert early.process is not None and late.process is not None and early.directory is not None
        directories = [Path(early.directory), Path(late.directory or "")]
        with pytest.raises(ConfigError) as refused:
            rule_results([early, late], config, "stacks/Pulumi.dev.yaml")
    assert len(refused.value.problems) == 2, refused.value.problems
    assert "makes the generated rule" in refused.value.problems[0]
    assert "of the AnalysisTemplate orders-api-sli-gate" in refused.value.problems[1]
    assert not any(directory.exists() for directory in directories)
    with RuleCheck(rules) as unread:
        process, directory = unread.process, Path(unread.directory or "")
    assert process is not None and process.poll() is not None and not directory.exists()


def test_a_rule_file_that_cannot_be_written_leaves_no_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    require_tool("promtool")
    made: list[str] = []
    real_mkdtemp = rulecheck.tempfile.mkdtemp
    monkeypatch.setattr(
        rulecheck.tempfile, "mkdtemp", lambda **kw: made.append(real_mkdtemp(**kw)) or made[-1]
    )

    def full_disk(self: Path, *args: Any, **kwargs: Any) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError, match="No space left"):
        RuleCheck({"prometheus/a.rules.yml": "groups: []\n"})
    assert len(made) == 1 and not Path(made[0]).exists()
