"""promtool unit tests of the delivery rules, generated from the stack's config: four releases of the
stack's first service (one failed, one followed by a page alert of the service within the failure
window) give the expected four measures; the levels they cross open exactly the expected tickets; a
release whose page alert started before it is not a failed change; a release followed within the
failure window by a failed or errored SLI-gate AnalysisRun of the service is one, counted once with a
page, and a successful run, a run of another Rollout or namespace, or one that failed outside the window
is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from components.config import DELIVERY_WINDOW, StackConfig, prometheus_duration_seconds
from components.delivery import metrics
from components.delivery.rules import (
    ALERT_FOR,
    ANALYSIS_RUN_INFO,
    CHANGE_FAILURE_RATE,
    DEPLOYMENT_FREQUENCY,
    DEPLOYMENTS,
    FAILED_CHANGES,
    GATE_FAILED_PHASES,
    LEAD_TIME_P50,
    LEAD_TIME_P90,
    MEASURES,
    RED,
    TIME_TO_RESTORE_P50,
    VALUE_TEMPLATES,
    YELLOW,
    Measure,
    alert_name,
    alert_rules,
    delivery,
    rule_groups,
    threshold_band,
)
from components.slo.burn_rates import PAGE, decimal_text

RULES_FILE = "delivery.rules.yml"
TESTS_FILE = "delivery.test.yml"
PAGE_ALERT = "DeliveryTestPage"
PAGE_AT_STEP = 10  # the page alert fires from this evaluation on
PAGE_STEPS = 5  # for this many evaluations
GATE_AT_STEP = 12  # a gate run is in its phase from this evaluation on
GATE_STEPS = 30  # the evaluations of a gate test
CONTROLLER_NAMESPACE = "argo-rollouts"
POD_HASH = "6d4f8c9b5"  # a pod template hash as Argo Rollouts spells it


def _seconds(duration: str) -> int:
    return int(prometheus_duration_seconds(duration))


def _text(value: float | Decimal) -> str:
    return decimal_text(Decimal(repr(float(value))))


class Scenario:
    """Releases r1..r4 of one service; r2 failed; a page starts after r4 within the failure window."""

    def __init__(self, config: StackConfig) -> None:
        settings = delivery(config)
        self.config = config
        self.service = config.services[0]
        self.interval = _seconds(settings.evaluation_interval)
        self.failure_window = _seconds(settings.failure_window)
        self.page_start = PAGE_AT_STEP * self.interval
        # every release ends after the page started, except r4: half the failure window before it
        self.releases = {
            "r1": (True, 100_000, 3_600),
            "r2": (False, 103_000, 600),
            "r3": (True, 107_200, 7_200),
            "r4": (True, self.page_start - self.failure_window // 2, 10_800),
        }
        # the measures hold from the first evaluation after the incident until the alerts' `for`
        self.steps = PAGE_AT_STEP + PAGE_STEPS + (_seconds(ALERT_FOR) + 1800) // self.interval

    def labels(self, release: str) -> str:
        return (
            f'job="{metrics.PUSH_JOB}",service="{self.service.name}",'
            f'environment="{self.config.environment}",release="{release}"'
        )

    def input_series(self) -> list[dict[str, str]]:
        series = []
        for release, (succeeded, end, lead) in self.releases.items():
            labels = self.labels(release)
            for name, value in (
                (metrics.END_TIME, end),
                (metrics.COMMIT_TIME, end - lead),
                (metrics.SUCCEEDED, 1 if succeeded else 0),
            ):
                series.append({"series": f"{name}{{{labels}}}", "values": f"{value}x{self.steps}"})
        alert = (
            f'ALERTS{{alertname="{PAGE_ALERT}",alertstate="firing",severity="{PAGE}",'
            f'namespace="{self.config.kubernetes.namespace}",service="{self.service.name}"}}'
        )
        page = f"_x{PAGE_AT_STEP - 1} 1x{PAGE_STEPS - 1} stale"
        series.append({"series": alert, "values": page})
        return series

    def measures(self) -> dict[str, float]:
        """What the rules must give, computed here from the scenario."""
        deployed = [(end, lead) for ok, end, lead in self.releases.values() if ok]
        leads = sorted(lead for _, lead in deployed)
        failed = [end for end, _ in deployed if 0 <= self.page_start - end <= self.failure_window]
        window_days = prometheus_duration_seconds(DELIVERY_WINDOW) / 86400
        return {
            DEPLOYMENTS: len(deployed),
            DEPLOYMENT_FREQUENCY: len(deployed) / window_days,
            LEAD_TIME_P50: _quantile(leads, 0.5),
            LEAD_TIME_P90: _quantile(leads, 0.9),
            FAILED_CHANGES: len(failed),
            CHANGE_FAILURE_RATE: len(failed) / len(deployed),
            TIME_TO_RESTORE_P50: PAGE_STEPS * self.interval,
        }

    def level(self, measure: Measure, value: float) -> str | None:
        band = threshold_band(self.config, measure)
        yellow, red = band.yellow, band.red
        if measure.key == "deploymentFrequency":
            limits = (86400 / _seconds(yellow), 86400 / _seconds(red))
            return RED if value < limits[1] else YELLOW if value < limits[0] else None
        if measure.key == "changeFailureRate":
            yellow, red = yellow / 100, red / 100
        else:
            yellow, red = _seconds(yellow), _seconds(red)
        return RED if value > red else YELLOW if value > yellow else None


def _quantile(values: list[int], q: float) -> float:
    """PromQL's quantile(): linear interpolation between the closest ranks."""
    rank = q * (len(values) - 1)
    low = int(rank)
    high = min(low + 1, len(values) - 1)
    return values[low] + (rank - low) * (values[high] - values[low])


def humanize_duration(seconds: float) -> str:
    """Go templates' humanizeDuration for whole seconds, e.g. 1d 2h 0m 5s."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m {secs}s"
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def _value_text(measure: Measure, value: float) -> str:
    """$value as the summary's template prints it."""
    if measure.unit == "per day":
        return f"{value:.3g} deployments per day"
    if measure.unit == "ratio":
        return f"{value * 100:.4g}%"
    return humanize_duration(value)


def _duration(seconds: int) -> str:
    return f"{seconds}s"


def measures_test(scenario: Scenario) -> dict[str, Any]:
    after = (PAGE_AT_STEP + PAGE_STEPS + 1) * scenario.interval
    env = {"service": scenario.service.name, "environment": scenario.config.environment}
    labels = ",".join(f'{k}="{v}"' for k, v in env.items())
    return {
        "name": "four releases, one failed, one followed by a page: the four measures",
        "interval": _duration(scenario.interval),
        "input_series": scenario.input_series(),
        "promql_expr_test": [
            {
                "expr": f"{record}{{{labels}}}",
                "eval_time": _duration(after),
                "exp_samples": [{"labels": f"{record}{{{labels}}}", "value": float(value)}],
            }
            for record, value in scenario.measures().items()
        ],
    }


def alerts_test(scenario: Scenario) -> dict[str, Any]:
    """After the alerts' `for`, exactly the levels the measures cross open a ticket."""
    at = (scenario.steps - 1) * scenario.interval
    values = scenario.measures()
    by_name = {rule["alert"]: rule for rule in alert_rules(scenario.config, scenario.service)}
    cases = []
    for measure in MEASURES:
        firing = scenario.level(measure, values[measure.record])
        for level in (YELLOW, RED):
            name = alert_name(measure, level)
            expected = []
            if level == firing:
                rule = by_name[name]
                value = _value_text(measure, values[measure.record])
                summary = rule["annotations"]["summary"].replace(VALUE_TEMPLATES[measure.unit], value)
                annotations = {**rule["annotations"], "summary": summary}
                expected = [{"exp_labels": dict(rule["labels"]), "exp_annotations": annotations}]
            cases.append({"alertname": name, "eval_time": _duration(at), "exp_alerts": expected})
    return {
        "name": "the measures' levels open tickets after their `for`",
        "interval": _duration(scenario.interval),
        "input_series": scenario.input_series(),
        "alert_rule_test": cases,
    }


def page_before_release_test(scenario: Scenario) -> dict[str, Any]:
    """A page that was already firing when the release ended does not make it a failed change."""
    shifted = Scenario(scenario.config)
    shifted.releases = {"r4": (True, shifted.page_start + shifted.interval, 600)}
    env = {"service": shifted.service.name, "environment": shifted.config.environment}
    labels = ",".join(f'{k}="{v}"' for k, v in env.items())
    after = (PAGE_AT_STEP + PAGE_STEPS + 1) * shifted.interval
    return {
        "name": "a page that started before the release is not its failure",
        "interval": _duration(shifted.interval),
        "input_series": shifted.input_series(),
        "promql_expr_test": [
            {
                "expr": f"{FAILED_CHANGES}{{{labels}}}",
                "eval_time": _duration(after),
                "exp_samples": [{"labels": f"{FAILED_CHANGES}{{{labels}}}", "value": 0.0}],
            }
        ],
    }


@dataclass(frozen=True)
class GateRun:
    """One AnalysisRun as the Argo Rollouts controller exports it: in each phase over its evaluations
    (from, to: the to excluded). `honor_labels`: scraped keeping its own `namespace`; else (the Argo
    Rollouts chart's ServiceMonitor) that is `exported_namespace` and `namespace` is the controller's."""

    name: str
    phases: tuple[tuple[str, int, int], ...]
    namespace: str | None = None  # the stack's namespace unless given
    honor_labels: bool = False

    def first_failed_step(self) -> int | None:
        steps = [start for phase, start, _ in self.phases if phase in GATE_FAILED_PHASES]
        return min(steps) if steps else None


@dataclass(frozen=True)
class GateCase:
    title: str
    before_gate: int  # the release ends this many seconds before the gate's step
    runs: tuple[GateRun, ...]
    page: bool = False


def _phases(first: str, then: str) -> tuple[tuple[str, int, int], ...]:
    return ((first, 2, GATE_AT_STEP), (then, GATE_AT_STEP, GATE_STEPS))


def gate_cases(scenario: Scenario) -> tuple[GateCase, ...]:
    service, window, interval = scenario.service.name, scenario.failure_window, scenario.interval
    run = f"{service}-{POD_HASH}-3-2"
    failed = GateRun(run, _phases("Running", "Failed"))
    # failed at steps 2 to 4, gone from the scrape, back at the gate's step: the release ends in between
    gap = GateRun(run, (("Failed", 2, 5), ("Failed", GATE_AT_STEP, GATE_STEPS)))
    return (
        GateCase("a failed SLI-gate run after the release is its failure", window // 2, (failed,)),
        GateCase(
            "an errored SLI-gate run after the release is its failure (scraped with honorLabels)",
            window // 2,
            (GateRun(run, _phases("Running", "Error"), honor_labels=True),),
        ),
        GateCase(
            "a successful SLI-gate run and failed runs of another Rollout or namespace are no failure",
            window // 2,
            (
                GateRun(run, _phases("Running", "Successful")),
                GateRun(f"{service}-worker-{POD_HASH}-3-2", _phases("Running", "Failed")),
                GateRun(run, _phases("Running", "Failed"), namespace="elsewhere"),
            ),
        ),
        GateCase(
            "an SLI-gate run that failed after the failure window is no failure",
            window + 2 * interval,
            (failed,),
        ),
        GateCase(
            "a run failed before the release and seen again after a scrape gap is not its failure",
            min(4 * interval, window // 2),
            (gap,),
        ),
        GateCase(
            "a page and a failed SLI-gate run after the release count once", window // 2, (failed,), page=True
        ),
    )


def _step_values(spans: list[tuple[int, int]]) -> str:
    """promtool's values of a series present over the spans: 1 in them, stale right after each."""
    present = {step for start, end in spans for step in range(start, end)}
    last = max(end for _, end in spans)
    values = ["1" if step in present else "stale" if step - 1 in present else "_" for step in range(last + 1)]
    return " ".join(values)


def _gate_series(scenario: Scenario, run: GateRun) -> list[dict[str, str]]:
    namespace = run.namespace or scenario.config.kubernetes.namespace
    if run.honor_labels:
        target = f'namespace="{namespace}"'
    else:
        target = f'namespace="{CONTROLLER_NAMESPACE}",exported_namespace="{namespace}"'
    spans: dict[str, list[tuple[int, int]]] = {}
    for phase, start, end in run.phases:
        spans.setdefault(phase, []).append((start, end))
    return [
        {
            "series": f'{ANALYSIS_RUN_INFO}{{{target},name="{run.name}",phase="{phase}",job="argo-rollouts-metrics"}}',
            "values": _step_values(phase_spans),
        }
        for phase, phase_spans in spans.items()
    ]


def _counts(scenario: Scenario, case: GateCase, end: int) -> bool:
    """What the rules must find: a page or a run of the service's Rollout in the stack's namespace that
    started paging, or was first seen failed or errored, after the release ended and within the window."""

    def within(at: int) -> bool:
        return 0 <= at - end <= scenario.failure_window

    # the page alert's first sample is at the evaluation before PAGE_AT_STEP
    if case.page and within((PAGE_AT_STEP - 1) * scenario.interval):
        return True
    for run in case.runs:
        ours = run.name.startswith(f"{scenario.service.name}-{POD_HASH}-") and run.namespace is None
        step = run.first_failed_step()
        if ours and step is not None and within(step * scenario.interval):
            return True
    return False


def gate_test(scenario: Scenario, case: GateCase) -> dict[str, Any]:
    """One release and the case's SLI-gate runs (and page): the failed changes and the rate it gives."""
    gated = Scenario(scenario.config)
    end = GATE_AT_STEP * gated.interval - case.before_gate
    gated.releases = {"r1": (True, end, 600)}
    gated.steps = GATE_STEPS
    series = [s for s in gated.input_series() if case.page or not s["series"].startswith("ALERTS{")]
    for run in case.runs:
        series += _gate_series(gated, run)
    env = {"service": gated.service.name, "environment": gated.config.environment}
    labels = ",".join(f'{k}="{v}"' for k, v in env.items())
    failed = 1.0 if _counts(gated, case, end) else 0.0
    return {
        "name": case.title,
        "interval": _duration(gated.interval),
        "input_series": series,
        "promql_expr_test": [
            {
                "expr": f"{record}{{{labels}}}",
                "eval_time": _duration((GATE_STEPS - 1) * gated.interval),
                "exp_samples": [{"labels": f"{record}{{{labels}}}", "value": failed}],
            }
            for record in (FAILED_CHANGES, CHANGE_FAILURE_RATE)
        ],
    }


def promtool_tests(config: StackConfig) -> dict[str, Any]:
    scenario = Scenario(config)
    return {
        "rule_files": [RULES_FILE],
        "evaluation_interval": delivery(config).evaluation_interval,
        "group_eval_order": [group["name"] for group in rule_groups(config)],
        "tests": [
            measures_test(scenario),
            alerts_test(scenario),
            page_before_release_test(scenario),
            *(gate_test(scenario, case) for case in gate_cases(scenario)),
        ],
    }
