"""promtool unit tests of the delivery rules, generated from the stack's config: four releases of the
stack's first service (one failed, one followed by a page alert of the service within the failure
window) give the expected four measures; the levels they cross open exactly the expected tickets; a
release whose page alert started before it is not a failed change.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from components.config import DELIVERY_WINDOW, StackConfig, prometheus_duration_seconds
from components.delivery import metrics
from components.delivery.rules import (
    ALERT_FOR,
    CHANGE_FAILURE_RATE,
    DEPLOYMENT_FREQUENCY,
    DEPLOYMENTS,
    FAILED_CHANGES,
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
)
from components.slo.burn_rates import PAGE, decimal_text

RULES_FILE = "delivery.rules.yml"
TESTS_FILE = "delivery.test.yml"
PAGE_ALERT = "DeliveryTestPage"
PAGE_AT_STEP = 10  # the page alert fires from this evaluation on
PAGE_STEPS = 5  # for this many evaluations


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
        band = getattr(delivery(self.config).thresholds, _field(measure))
        yellow, red = band.yellow, band.red
        if measure.key == "deploymentFrequency":
            limits = (86400 / _seconds(yellow), 86400 / _seconds(red))
            return RED if value < limits[1] else YELLOW if value < limits[0] else None
        if measure.key == "changeFailureRate":
            yellow, red = yellow / 100, red / 100
        else:
            yellow, red = _seconds(yellow), _seconds(red)
        return RED if value > red else YELLOW if value > yellow else None


def _field(measure: Measure) -> str:
    return {
        "deploymentFrequency": "deployment_frequency",
        "leadTime": "lead_time",
        "changeFailureRate": "change_failure_rate",
        "timeToRestore": "time_to_restore",
    }[measure.key]


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


def promtool_tests(config: StackConfig) -> dict[str, Any]:
    scenario = Scenario(config)
    return {
        "rule_files": [RULES_FILE],
        "evaluation_interval": delivery(config).evaluation_interval,
        "group_eval_order": [group["name"] for group in rule_groups(config)],
        "tests": [measures_test(scenario), alerts_test(scenario), page_before_release_test(scenario)],
    }
