"""promtool unit tests for a service's SLO rules, on synthetic series made from its SLI selectors:
a fast burn pages, a slow burn opens a ticket, low burn and zero traffic stay quiet, absent metrics alert.
"""

from __future__ import annotations

import math
import re
import re._constants as sre_constants  # type: ignore[import-not-found]
import re._parser as sre_parse  # type: ignore[import-not-found]
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from components.config import Service, Slo, StackConfig
from components.naming import ServiceNames, service_names
from components.slo.burn_rates import (
    ABSENT_FOR,
    PAGE,
    TICKET,
    TIERS,
    BurnTier,
    decimal_text,
    error_budget,
    window_minutes,
)
from components.slo.rules import (
    BUDGET_REMAINING_RECORD,
    SliQueries,
    absent_alert,
    alert_name,
    burn_alert,
    error_ratio_record,
    rule_groups,
    rules_file_name,
    sli_queries,
    slo_labels,
    slo_series,
)
from components.slo.selectors import Matcher, Selector

REQUESTS_PER_MINUTE = Decimal(1000)


HEALTHY_MINUTES = 360  # a full 6h window of good traffic before a burn starts


STEADY_MINUTES = 120  # long enough for every window to hold the steady error ratio


FAST_BURN = Decimal(36)  # well above 14.4x where the objective allows it


SLOW_BURN = Decimal(2)


LOW_BURN = Decimal("0.5")


@dataclass(frozen=True)
class Phase:
    minutes: int
    bad_fraction: Decimal
    requests_per_minute: Decimal = REQUESTS_PER_MINUTE


def counter_values(steps: list[tuple[int, Decimal]]) -> str:
    """promtool expanding notation of a counter from 0 that grows by `step` per minute in each phase."""
    parts: list[str] = []
    value = Decimal(0)
    for index, (minutes, step) in enumerate(steps):
        if index == 0:
            parts.append(f"0+{decimal_text(step)}x{minutes}")
            value = step * minutes
        else:
            start = value + step
            parts.append(f"{decimal_text(start)}+{decimal_text(step)}x{minutes - 1}")
            value = start + step * (minutes - 1)
    return " ".join(parts)


def _regex_example(pattern: str) -> str | None:
    """A short string the regex matches, or None; good enough for selectors' typical regexes."""
    try:
        tree = sre_parse.parse(pattern)
    except re.error:
        return None
    return _emit(list(tree))


def _emit(items: list[Any]) -> str | None:
    out = ""
    for op, arg in items:
        if op is sre_constants.LITERAL:
            out += chr(arg)
        elif op is sre_constants.ANY:
            out += "0"
        elif op is sre_constants.IN:
            first = _emit_class(arg)
            if first is None:
                return None
            out += first
        elif op is sre_constants.BRANCH:
            part = _emit(list(arg[1][0]))
            if part is None:
                return None
            out += part
        elif op is sre_constants.SUBPATTERN:
            part = _emit(list(arg[-1]))
            if part is None:
                return None
            out += part
        elif op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
            low, _, sub = arg
            part = _emit(list(sub))
            if part is None:
                return None
            out += part * low
        elif op is not sre_constants.AT:
            return None
    return out


def _emit_class(items: list[Any]) -> str | None:
    op, arg = items[0]
    if op is sre_constants.LITERAL:
        return str(chr(arg))
    if op is sre_constants.RANGE:
        return str(chr(arg[0]))
    if op is sre_constants.CATEGORY:
        return {sre_constants.CATEGORY_DIGIT: "0", sre_constants.CATEGORY_WORD: "a"}.get(arg)
    return None


_CANDIDATES = ("", "200", "500", "OK", "ok", "error", "true", "false", "0", "1", "x")


def example_labels(matchers: Iterable[Matcher]) -> dict[str, str] | None:
    """Label values that satisfy every matcher (an empty value means the label is absent), or None."""
    by_label: dict[str, list[Matcher]] = {}
    for matcher in matchers:
        by_label.setdefault(matcher.name, []).append(matcher)
    labels: dict[str, str] = {}
    for name, group in sorted(by_label.items()):
        candidates = [m.value for m in group if m.op == "="]
        candidates += [x for m in group if m.op == "=~" and (x := _regex_example(m.value)) is not None]
        candidates += list(_CANDIDATES) + [m.value + "_other" for m in group]
        value = next((c for c in candidates if all(m.matches(c) for m in group)), None)
        if value is None:
            return None
        if value:
            labels[name] = value
    return labels


def _series_text(metric: str, labels: dict[str, str]) -> str:
    return metric + "{" + ",".join(Matcher(k, "=", v).render() for k, v in sorted(labels.items())) + "}"


@dataclass(frozen=True)
class SyntheticSli:
    """Input series that drive one SLI: each one counts bad, good or all requests."""

    series: tuple[tuple[str, str], ...]  # (series text, "bad" | "good" | "all")

    def input_series(self, phases: list[Phase]) -> list[dict[str, str]]:
        result = []
        for text, counts in self.series:
            steps = [(p.minutes, _per_minute(p, counts)) for p in phases]
            result.append({"series": text, "values": counter_values(steps)})
        return result


def _per_minute(phase: Phase, counts: str) -> Decimal:
    bad = phase.requests_per_minute * phase.bad_fraction
    return {"bad": bad, "good": phase.requests_per_minute - bad, "all": phase.requests_per_minute}[counts]


class SyntheticSeriesError(ValueError):
    pass


def _labels_or_raise(matchers: Iterable[Matcher], what: str) -> dict[str, str]:
    labels = example_labels(matchers)
    if labels is None:
        raise SyntheticSeriesError(f"no series can match {what}")
    return labels


def synthetic_sli(queries: SliQueries) -> SyntheticSli:
    """Series that match the SLI's selectors: the bad (or good) requests and the rest."""
    if queries.good is not None:  # latency: the threshold's bucket counts the good requests
        good = _labels_or_raise(queries.good.matchers, queries.good.render())
        total = {k: v for k, v in good.items() if k != "le"}
        return SyntheticSli(
            (
                (_series_text(queries.good.metric, good), "good"),
                (_series_text(queries.total.metric, total), "all"),
            )
        )
    assert queries.bad is not None
    if queries.bad.metric != queries.total.metric:  # errors counted apart from all requests
        bad = _labels_or_raise(queries.bad.matchers, queries.bad.render())
        every = _labels_or_raise(queries.total.matchers, queries.total.render())
        return SyntheticSli(
            (
                (_series_text(queries.bad.metric, bad), "bad"),
                (_series_text(queries.total.metric, every), "all"),
            )
        )
    # One counter split by a label: the good series breaks one of the errors selector's matchers.
    bad = _labels_or_raise((*queries.bad.matchers, *queries.total.matchers), queries.bad.render())
    candidates = (example_labels((m.negated(), *queries.total.matchers)) for m in queries.bad.matchers)
    rest = next((labels for labels in candidates if labels is not None), None)
    if rest is None:
        raise SyntheticSeriesError(
            f"no series matches {queries.total.render()} but not {queries.bad.render()}"
        )
    return SyntheticSli(
        ((_series_text(queries.bad.metric, bad), "bad"), (_series_text(queries.total.metric, rest), "good"))
    )


def _minutes(value: int) -> str:
    return f"{value}m"


def _absent_labels(selector: Selector) -> dict[str, str]:
    """The labels absent() gives its result: the selector's equality matchers used once."""
    counts: dict[str, int] = {}
    for m in selector.matchers:
        counts[m.name] = counts.get(m.name, 0) + 1
    return {m.name: m.value for m in selector.matchers if m.op == "=" and counts[m.name] == 1 and m.value}


def _expect(
    eval_minute: int, alertname: str, rules: list[dict[str, Any]], extra: dict[str, str] | None = None
) -> dict[str, Any]:
    """An alert_rule_test entry: exactly these rules' alerts fire (none when `rules` is empty)."""
    return {
        "eval_time": _minutes(eval_minute),
        "alertname": alertname,
        "exp_alerts": [
            {
                "exp_labels": {**(extra or {}), **rule["labels"]},
                "exp_annotations": dict(rule["annotations"]),
            }
            for rule in rules
        ],
    }


@dataclass(frozen=True)
class SloTestPlan:
    config: StackConfig
    service: Service
    slo: Slo

    @property
    def names(self) -> ServiceNames:
        return service_names(self.config, self.service)

    @property
    def queries(self) -> SliQueries:
        return sli_queries(self.names, self.slo)

    def tier_rules(self, tier: BurnTier) -> list[dict[str, Any]]:
        return [burn_alert(self.config, self.service, self.slo, tier)]

    def name(self, kind: str) -> str:
        return alert_name(self.names, self.slo, kind)

    def max_burn(self) -> Decimal:
        return 1 / error_budget(self.slo)

    def inputs(self, phases: list[Phase]) -> list[dict[str, str]]:
        return synthetic_sli(self.queries).input_series(phases)


def _phases(*pairs: tuple[int, Decimal]) -> list[Phase]:
    return [Phase(minutes, fraction) for minutes, fraction in pairs]


def fast_burn_test(plan: SloTestPlan) -> dict[str, Any]:
    """After 6h of good traffic a fast burn starts; the page fires once the 1h ratio crosses 14.4x."""
    page = TIERS[0]
    burn = min(FAST_BURN, plan.max_burn())
    fraction = burn * error_budget(plan.slo)
    # Workbook: time to fire = budget / error ratio x window x burn threshold.
    fire_minutes = error_budget(plan.slo) / fraction * window_minutes(page.long) * page.burn
    before = int(fire_minutes) - 3
    after = math.ceil(fire_minutes) + 3
    return {
        "name": f"{plan.slo.name}: a {decimal_text(burn)}x burn pages within {decimal_text(fire_minutes)}m",
        "interval": "1m",
        "input_series": plan.inputs(_phases((HEALTHY_MINUTES, Decimal(0)), (after + 1, fraction))),
        "alert_rule_test": [
            _expect(HEALTHY_MINUTES, plan.name(PAGE), []),
            _expect(HEALTHY_MINUTES + before, plan.name(PAGE), []),
            _expect(HEALTHY_MINUTES + after, plan.name(PAGE), plan.tier_rules(page)),
        ],
    }


def low_burn_test(plan: SloTestPlan) -> dict[str, Any]:
    """Errors at half the budget for 2h: nothing fires, and half the budget remains."""
    fraction = LOW_BURN * error_budget(plan.slo)
    labels = slo_labels(plan.names, plan.slo)
    return {
        "name": f"{plan.slo.name}: a {decimal_text(LOW_BURN)}x burn fires nothing",
        "interval": "1m",
        "input_series": plan.inputs(_phases((STEADY_MINUTES, fraction))),
        "alert_rule_test": [
            _expect(minute, plan.name(kind), []) for minute in (30, STEADY_MINUTES) for kind in (PAGE, TICKET)
        ],
        "promql_expr_test": [
            {
                "expr": f"round({slo_series(BUDGET_REMAINING_RECORD, labels)}, 0.01)",
                "eval_time": _minutes(STEADY_MINUTES),
                "exp_samples": [{"labels": slo_series("", labels), "value": 0.5}],
            }
        ],
    }


def slow_burn_test(plan: SloTestPlan) -> dict[str, Any]:
    """Errors at twice the budget: the 3d/6h ticket fires, the 3x ticket and both pages do not."""
    fraction = SLOW_BURN * error_budget(plan.slo)
    slow_ticket = TIERS[3]
    return {
        "name": f"{plan.slo.name}: a {decimal_text(SLOW_BURN)}x burn opens a ticket and does not page",
        "interval": "1m",
        "input_series": plan.inputs(_phases((STEADY_MINUTES, fraction))),
        "alert_rule_test": [
            rule
            for minute in (30, STEADY_MINUTES)
            for rule in (
                _expect(minute, plan.name(PAGE), []),
                _expect(minute, plan.name(TICKET), plan.tier_rules(slow_ticket)),
            )
        ],
    }


def zero_traffic_test(plan: SloTestPlan) -> dict[str, Any]:
    """Flat counters: no error ratio is recorded (no NaN) and nothing fires."""
    labels = slo_labels(plan.names, plan.slo)
    minutes = 60
    inputs = plan.inputs([Phase(minutes, Decimal(0), Decimal(0))])
    for series in inputs:  # counters that exist but do not move
        series["values"] = f"100+0x{minutes}"
    return {
        "name": f"{plan.slo.name}: zero traffic fires nothing and records no NaN",
        "interval": "1m",
        "input_series": inputs,
        "alert_rule_test": [
            _expect(minute, plan.name(kind), [])
            for minute in (30, minutes)
            for kind in (PAGE, TICKET, "absent")
        ],
        "promql_expr_test": [
            {"expr": slo_series(record, labels), "eval_time": _minutes(minutes), "exp_samples": []}
            for record in (error_ratio_record("5m"), error_ratio_record("3d"), BUDGET_REMAINING_RECORD)
        ],
    }


def absent_test(plan: SloTestPlan) -> dict[str, Any]:
    """No series at all: the absent alert fires after its `for`, the burn alerts stay quiet."""
    absent_rule = absent_alert(plan.config, plan.service, plan.slo)
    extra = _absent_labels(plan.queries.absent_selector)
    fires_at = window_minutes(ABSENT_FOR) + 5
    return {
        "name": f"{plan.slo.name}: absent metrics fire {absent_rule['alert']}",
        "interval": "1m",
        "input_series": [{"series": 'up{job="unrelated"}', "values": f"1x{fires_at}"}],
        "alert_rule_test": [
            _expect(window_minutes(ABSENT_FOR) - 5, absent_rule["alert"], []),
            _expect(fires_at, absent_rule["alert"], [absent_rule], extra),
            _expect(fires_at, plan.name(PAGE), []),
            _expect(fires_at, plan.name(TICKET), []),
        ],
    }


TRAFFIC_CASES = (fast_burn_test, low_burn_test, slow_burn_test, zero_traffic_test)


def slo_tests(plan: SloTestPlan) -> list[dict[str, Any]]:
    """Every scenario for one SLO; just the absent one when no series can match its selectors (e.g. errors
    that exclude every series of total): the rules still load, but there is no traffic to simulate."""
    try:
        traffic = [case(plan) for case in TRAFFIC_CASES]
    except SyntheticSeriesError:
        traffic = []
    return [*traffic, absent_test(plan)]


def promtool_tests(config: StackConfig, service: Service) -> dict[str, Any]:
    """The promtool unit-test file of one service, next to its rules file."""
    return {
        "rule_files": [rules_file_name(service)],
        "evaluation_interval": "1m",
        "group_eval_order": [g["name"] for g in rule_groups(config, service)],
        "tests": [test for slo in service.slos for test in slo_tests(SloTestPlan(config, service, slo))],
    }
