"""promtool unit tests for a service's SLO rules, on synthetic series made from its SLI selectors:
a fast burn pages, a slow burn opens a ticket once its window holds enough data and not before, low burn
and zero traffic stay quiet, vanished targets page, metrics that never existed open a ticket, and (for
latency) every spelling of the threshold's bucket counts while a series without it is left out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from components.config import Service, Slo, StackConfig
from components.naming import ServiceNames, service_names
from components.slo import label_regex
from components.slo.burn_rates import (
    ABSENT_FOR,
    PAGE,
    TICKET,
    TIERS,
    VANISHED_FOR,
    BurnTier,
    coverage_step,
    decimal_text,
    error_budget,
    go_float,
    percent_text,
    window_minutes,
)
from components.slo.rules import (
    BUDGET_REMAINING_RECORD,
    REQUESTS_RATE_RECORD,
    SLOTH_REMAINING_RECORD,
    SliQueries,
    absent_alert,
    alert_name,
    bucket_missing_alert,
    bucket_missing_description,
    burn_alert,
    burn_description,
    error_ratio_record,
    rule_groups,
    rule_labels,
    rules_file_name,
    sli_queries,
    slo_labels,
    slo_series,
    vanished_alert,
)
from components.slo.selectors import Matcher, Selector

REQUESTS_PER_MINUTE = Decimal(1000)


HEALTHY_MINUTES = 360  # a full 6h window of good traffic before a burn starts


STEADY_MINUTES = 120  # long enough for every window to hold the steady error ratio


FAST_BURN = Decimal(36)  # well above 14.4x where the objective allows it


SLOW_BURN = Decimal(2)


LOW_BURN = Decimal("0.5")


LONG_EVALUATION_MINUTES = 5


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


_CANDIDATES = ("", "200", "500", "OK", "ok", "error", "true", "false", "0", "1", "x")


def example_labels(matchers: Iterable[Matcher]) -> dict[str, str] | None:
    """Label values that satisfy every matcher (an empty value means the label is absent), or None."""
    by_label: dict[str, list[Matcher]] = {}
    for matcher in matchers:
        by_label.setdefault(matcher.name, []).append(matcher)
    labels: dict[str, str] = {}
    for name, group in sorted(by_label.items()):
        candidates = [m.value for m in group if m.op == "="]
        candidates += [x for m in group if m.op == "=~" and (x := label_regex.example(m.value)) is not None]
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
    """Input series that drive one SLI: each one counts bad, good or all requests.

    For latency the good series is the threshold's bucket, the `all` series its `_count`.
    """

    series: tuple[tuple[str, str], ...]  # (series text, "bad" | "good" | "all")
    kind: str = "ratio"

    def input_series(self, phases: list[Phase], sample_minutes: int = 1) -> list[dict[str, str]]:
        """The counters sampled every `sample_minutes` (which must divide every phase)."""
        result = []
        for text, counts in self.series:
            steps = [(p.minutes // sample_minutes, _per_minute(p, counts) * sample_minutes) for p in phases]
            result.append({"series": text, "values": counter_values(steps)})
        return result

    def error_ratio(self, phases: list[Phase], minute: int, window: str) -> float:
        """The recorded error ratio at `minute`, computed as Prometheus 2 computes it from these counters:
        every window starts on a sample (or before the first, a zero), so rate() does not extrapolate."""
        seconds = window_minutes(window) * 60
        start = max(0, minute - window_minutes(window))
        rates = {
            counts: (counter_at(phases, counts, minute) - counter_at(phases, counts, start)) / seconds
            for _, counts in self.series
        }
        if self.kind == "latency":
            return (rates["all"] - rates["good"]) / rates["all"]
        total = rates["all"] if "all" in rates else rates["bad"] + rates["good"]
        return rates["bad"] / total


def counter_at(phases: list[Phase], counts: str, minute: int) -> float:
    """The value `counter_values` gives the counter at `minute`, as promtool reads it (a float)."""
    value = Decimal(0)
    elapsed = 0
    for phase in phases:
        step = _per_minute(phase, counts)
        taken = min(phase.minutes, minute - elapsed)
        value += step * taken
        elapsed += phase.minutes
        if elapsed >= minute:
            break
    return float(decimal_text(value))


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


def histogram_labels(queries: SliQueries) -> dict[str, str]:
    """Labels of one histogram series the latency SLI selects (without `le`)."""
    assert queries.good is not None
    matchers = [m for m in queries.good.matchers if m.name != "le"]
    return _labels_or_raise(matchers, queries.total.render())


def synthetic_sli(queries: SliQueries) -> SyntheticSli:
    """Series that match the SLI's selectors: the bad (or good) requests and the rest."""
    if queries.good is not None:  # latency: the threshold's bucket counts the good requests
        labels = histogram_labels(queries)
        return SyntheticSli(
            (
                (_series_text(queries.good.metric, {**labels, "le": queries.threshold}), "good"),
                (_series_text(queries.total.metric, labels), "all"),
            ),
            kind="latency",
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


def le_spellings(threshold: float) -> list[str]:
    """How exporters write the threshold's bucket: Go (`0.3`, `1`), Prometheus 3 and Python (`1.0`), with a
    trailing zero (`0.30`), and the float artefacts of generated buckets on either side of it."""
    go = go_float(threshold)
    padded = go + "0" if "." in go else go + ".00"
    prometheus3 = go if "." in go else go + ".0"
    above, below = repr(math.nextafter(threshold, math.inf)), repr(math.nextafter(threshold, 0))
    return sorted({go, padded, prometheus3, above, below})


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


def humanize_percentage(value: float) -> str:
    """Go's `humanizePercentage` template function: %.4g of the percentage."""
    return f"{value * 100:.4g}%"


def coverage_at(minute: int, window: str, start: int = 0) -> float:
    """`slo:sli_coverage:ratio<window>` at `minute` for series that exist from minute `start` on."""
    step = window_minutes(coverage_step(window))
    first_step = -(-max(start, minute - window_minutes(window)) // step) * step
    return min(1.0, (minute - first_step + step) * 60 / (window_minutes(window) * 60))


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

    @property
    def labels(self) -> dict[str, str]:
        return slo_labels(self.names, self.slo)

    def record_labels(self, window: str | None = None) -> dict[str, str]:
        return rule_labels(self.names, self.slo, window)

    def name(self, kind: str) -> str:
        return alert_name(self.names, self.slo, kind)

    def max_burn(self) -> Decimal:
        return 1 / error_budget(self.slo)

    def synthetic(self) -> SyntheticSli:
        return synthetic_sli(self.queries)

    def inputs(self, phases: list[Phase], sample_minutes: int = 1) -> list[dict[str, str]]:
        return self.synthetic().input_series(phases, sample_minutes)

    def budget_spent(self, phases: list[Phase], minute: int, tier: BurnTier) -> float:
        """The burn alert's value, computed in the order of its expression."""
        ratio = self.synthetic().error_ratio(phases, minute, tier.long)
        coverage = coverage_at(minute, tier.long)
        budget = float(decimal_text(error_budget(self.slo)))
        return ratio * coverage * window_minutes(tier.long) / window_minutes(self.slo.period) / budget

    def fired_burn_alert(self, tier: BurnTier, phases: list[Phase], minute: int) -> dict[str, Any]:
        """The burn alert as it fires at `minute`: its templates expanded with the values of that time."""
        rule = burn_alert(self.config, self.service, self.slo, tier)
        description = burn_description(
            self.names,
            self.slo,
            tier,
            spent=humanize_percentage(self.budget_spent(phases, minute, tier)),
            coverage=humanize_percentage(coverage_at(minute, tier.long)),
        )
        return {**rule, "annotations": {**rule["annotations"], "description": description}}

    def quiet(self, minutes: Iterable[int], kinds: Iterable[str] = (PAGE, TICKET)) -> list[dict[str, Any]]:
        return [_expect(minute, self.name(kind), []) for minute in minutes for kind in kinds]


def _phases(*pairs: tuple[int, Decimal]) -> list[Phase]:
    return [Phase(minutes, fraction) for minutes, fraction in pairs]


def _sample_test(expr: str, minute: int, labels: dict[str, str], value: float | None) -> dict[str, Any]:
    """`expr` at `minute` is exactly one sample with these labels and value (none when `value` is None)."""
    text = "{" + ",".join(Matcher(k, "=", v).render() for k, v in sorted(labels.items())) + "}"
    samples = [] if value is None else [{"labels": text, "value": value}]
    return {"expr": expr, "eval_time": _minutes(minute), "exp_samples": samples}


def fast_burn_test(plan: SloTestPlan) -> dict[str, Any]:
    """After 6h of good traffic a fast burn starts; the page fires once 2% of the budget is spent in 1h."""
    page = TIERS[0]
    burn = min(FAST_BURN, plan.max_burn())
    fraction = burn * error_budget(plan.slo)
    # Workbook: time to fire = budget / error ratio x window x burn threshold.
    fire_minutes = error_budget(plan.slo) / fraction * window_minutes(page.long) * page.burn(plan.slo.period)
    before = int(fire_minutes) - 3
    after = math.ceil(fire_minutes) + 3
    phases = _phases((HEALTHY_MINUTES, Decimal(0)), (after + 1, fraction))
    return {
        "name": f"{plan.slo.name}: a {decimal_text(burn)}x burn pages within {decimal_text(fire_minutes)}m",
        "interval": "1m",
        "input_series": plan.inputs(phases),
        "alert_rule_test": [
            _expect(HEALTHY_MINUTES, plan.name(PAGE), []),
            _expect(HEALTHY_MINUTES + before, plan.name(PAGE), []),
            _expect(
                HEALTHY_MINUTES + after,
                plan.name(PAGE),
                [plan.fired_burn_alert(page, phases, HEALTHY_MINUTES + after)],
            ),
        ],
    }


def low_burn_test(plan: SloTestPlan) -> dict[str, Any]:
    """Errors at half the budget for 2h of fresh data: nothing fires, and the remaining budget counts the
    2h of data against the period (not the 2h as if they were the whole period)."""
    fraction = LOW_BURN * error_budget(plan.slo)
    coverage = Decimal(repr(coverage_at(STEADY_MINUTES, plan.slo.period)))
    remaining = (1 - LOW_BURN * coverage).quantize(Decimal("0.001"))
    return {
        "name": (
            f"{plan.slo.name}: a {decimal_text(LOW_BURN)}x burn fires nothing and leaves "
            f"{decimal_text(remaining * 100)}% of the budget"
        ),
        "interval": "1m",
        "input_series": plan.inputs(_phases((STEADY_MINUTES, fraction))),
        "alert_rule_test": plan.quiet((30, STEADY_MINUTES)),
        "promql_expr_test": [
            # ours, and Sloth's name for it, which its dashboards read
            *(
                _sample_test(
                    f"round({slo_series(record, plan.labels)}, 0.001)",
                    STEADY_MINUTES,
                    plan.record_labels(),
                    float(remaining),
                )
                for record in (BUDGET_REMAINING_RECORD, SLOTH_REMAINING_RECORD)
            ),
        ],
    }


def fresh_slow_burn_test(plan: SloTestPlan) -> dict[str, Any]:
    """Errors at twice the budget on fresh data: 2h of it are 0.09% of the budget, so no ticket opens yet."""
    fraction = SLOW_BURN * error_budget(plan.slo)
    return {
        "name": f"{plan.slo.name}: a {decimal_text(SLOW_BURN)}x burn on 2h of fresh data opens no ticket",
        "interval": "1m",
        "input_series": plan.inputs(_phases((STEADY_MINUTES, fraction))),
        "alert_rule_test": plan.quiet((30, STEADY_MINUTES)),
    }


def slow_burn_test(plan: SloTestPlan) -> dict[str, Any]:
    """Errors at twice the budget from the start: the 3d/6h ticket opens once 10% of the budget is spent
    within the 3 days, i.e. once half of them hold data (at 2x); the 3x ticket and the pages never fire."""
    slow_ticket = TIERS[3]
    fraction = SLOW_BURN * error_budget(plan.slo)
    needed = slow_ticket.burn(plan.slo.period) / SLOW_BURN  # the share of the window that must hold data
    fire_minute = float(needed) * window_minutes(slow_ticket.long)
    step = window_minutes(coverage_step(slow_ticket.long))
    before, after = _multiple(int(fire_minute) - 2 * step), _multiple(math.ceil(fire_minute) + step)
    phases = _phases((after + LONG_EVALUATION_MINUTES, fraction))
    return {
        "name": (
            f"{plan.slo.name}: a {decimal_text(SLOW_BURN)}x burn opens the {slow_ticket.long} ticket once "
            f"{percent_text(needed)} of the window holds data"
        ),
        "interval": _minutes(LONG_EVALUATION_MINUTES),
        "input_series": plan.inputs(phases, LONG_EVALUATION_MINUTES),
        "alert_rule_test": [
            *plan.quiet((before,)),
            _expect(after, plan.name(PAGE), []),
            _expect(after, plan.name(TICKET), [plan.fired_burn_alert(slow_ticket, phases, after)]),
        ],
    }


def _multiple(minute: int) -> int:
    """The evaluation of the long tests at or after `minute`."""
    return -(-minute // LONG_EVALUATION_MINUTES) * LONG_EVALUATION_MINUTES


def zero_traffic_test(plan: SloTestPlan) -> dict[str, Any]:
    """Flat counters: no error ratio is recorded (no NaN) and nothing fires."""
    minutes = 60
    inputs = plan.inputs([Phase(minutes, Decimal(0), Decimal(0))])
    for series in inputs:  # counters that exist but do not move
        series["values"] = f"100+0x{minutes}"
    return {
        "name": f"{plan.slo.name}: zero traffic fires nothing and records no NaN",
        "interval": "1m",
        "input_series": inputs,
        "alert_rule_test": plan.quiet((30, minutes), (PAGE, TICKET, "absent", "vanished")),
        "promql_expr_test": [
            _sample_test(slo_series(record, plan.labels), minutes, plan.labels, None)
            for record in (error_ratio_record("5m"), error_ratio_record("3d"), BUDGET_REMAINING_RECORD)
        ],
    }


def absent_test(plan: SloTestPlan) -> dict[str, Any]:
    """No series ever: the absent ticket fires after its `for`; nothing pages, as nothing vanished."""
    absent_rule = absent_alert(plan.config, plan.service, plan.slo)
    extra = _absent_labels(plan.queries.total)
    fires_at = window_minutes(ABSENT_FOR) + 5
    return {
        "name": f"{plan.slo.name}: metrics that never existed fire {absent_rule['alert']} and page nothing",
        "interval": "1m",
        "input_series": [{"series": 'up{job="unrelated"}', "values": f"1x{fires_at}"}],
        "alert_rule_test": [
            _expect(window_minutes(ABSENT_FOR) - 5, absent_rule["alert"], []),
            _expect(fires_at, absent_rule["alert"], [absent_rule], extra),
            *plan.quiet((fires_at,), (PAGE, TICKET, "vanished")),
        ],
    }


def vanished_test(plan: SloTestPlan) -> dict[str, Any]:
    """Every target disappears after an hour of good traffic: a page within VANISHED_FOR and a scrape."""
    vanished = vanished_alert(plan.config, plan.service, plan.slo)
    extra = _absent_labels(plan.queries.total)
    gone_at = 60
    inputs = plan.inputs(_phases((gone_at, Decimal(0))))
    for series in inputs:  # the pods are deleted: Prometheus marks their series stale
        series["values"] += " stale"
    fires_at = gone_at + 1 + window_minutes(VANISHED_FOR)
    return {
        "name": f"{plan.slo.name}: targets that vanish page {vanished['alert']} within {fires_at - gone_at}m",
        "interval": "1m",
        "input_series": inputs,
        "alert_rule_test": [
            _expect(gone_at, vanished["alert"], []),
            _expect(fires_at - 2, vanished["alert"], []),
            _expect(fires_at + 1, vanished["alert"], [vanished], extra),
            *plan.quiet((fires_at + 1,)),
        ],
    }


def bucket_spellings_test(plan: SloTestPlan) -> dict[str, Any] | None:
    """Latency: one pod per spelling of the threshold's bucket, and one pod without that bucket. Every
    spelling counts its fast requests; the pod without the bucket is left out (not counted as slow) and
    fires its own ticket."""
    queries = plan.queries
    if queries.good is None:
        return None
    assert plan.slo.sli.threshold_seconds is not None
    labels = histogram_labels(queries)
    phase = Phase(STEADY_MINUTES, LOW_BURN * error_budget(plan.slo))
    inputs: list[dict[str, str]] = []
    spellings = le_spellings(plan.slo.sli.threshold_seconds)
    for index, le in enumerate(spellings):
        pod = {**labels, "instance": f"pod-{index}"}
        inputs += SyntheticSli(
            (
                (_series_text(queries.good.metric, {**pod, "le": le}), "good"),
                (_series_text(queries.total.metric, pod), "all"),
            )
        ).input_series([phase])
    bare = {**labels, "instance": "pod-without-bucket"}
    other_le = go_float(plan.slo.sli.threshold_seconds * 2)
    inputs += SyntheticSli(
        (
            (_series_text(queries.good.metric, {**bare, "le": other_le}), "all"),
            (_series_text(queries.total.metric, bare), "all"),
        )
    ).input_series([phase])
    rule = bucket_missing_alert(plan.config, plan.service, plan.slo)
    assert rule is not None
    fired = {
        **rule,
        "annotations": {
            **rule["annotations"],
            "description": bucket_missing_description(queries, instance=bare["instance"]),
        },
    }
    requests_per_second = float(len(spellings) * REQUESTS_PER_MINUTE / 60)
    return {
        "name": (
            f"{plan.slo.name}: buckets spelled {', '.join(spellings)} all count; a series without the "
            f"bucket is left out and fires {rule['alert']}"
        ),
        "interval": "1m",
        "input_series": inputs,
        "alert_rule_test": [
            *plan.quiet((30, STEADY_MINUTES)),
            _expect(window_minutes(ABSENT_FOR) - 5, rule["alert"], []),
            _expect(STEADY_MINUTES, rule["alert"], [fired], bare),
        ],
        "promql_expr_test": [
            _sample_test(
                f"round({slo_series(error_ratio_record('1h'), plan.labels)} * 1000000)",
                STEADY_MINUTES,
                plan.record_labels("1h"),
                float(round(phase.bad_fraction * 1000000)),
            ),
            _sample_test(
                f"round({slo_series(REQUESTS_RATE_RECORD, plan.labels)} * 1000)",
                STEADY_MINUTES,
                plan.record_labels(),
                float(round(requests_per_second * 1000)),
            ),
        ],
    }


def min_events_test(plan: SloTestPlan) -> dict[str, Any] | None:
    """With `minEvents`: every request fails, but the windows hold too few requests to alert on."""
    if plan.slo.min_events is None:
        return None
    minutes = 90
    requests_per_minute = Decimal(plan.slo.min_events) / (2 * window_minutes(TIERS[-1].long))
    phases = [Phase(minutes, min(Decimal(1), plan.max_burn() * error_budget(plan.slo)), requests_per_minute)]
    return {
        "name": f"{plan.slo.name}: fewer than {plan.slo.min_events} requests per window fire nothing",
        "interval": "1m",
        "input_series": plan.inputs(phases),
        "alert_rule_test": plan.quiet((30, minutes)),
    }


TRAFFIC_CASES = (
    fast_burn_test,
    low_burn_test,
    fresh_slow_burn_test,
    zero_traffic_test,
    vanished_test,
    bucket_spellings_test,
    min_events_test,
)


# Days of traffic, evaluated every 5 minutes: a separate file, as one at 1m takes promtool minutes.
LONG_CASES = (slow_burn_test,)


def _traffic_tests(plan: SloTestPlan, cases: Iterable[Any]) -> dict[Any, dict[str, Any]]:
    """The SLO's traffic scenarios by case; none when no series can match its selectors (e.g. errors that
    exclude every series of total): the rules still load, but there is no traffic to simulate."""
    try:
        return {case: test for case in cases if (test := case(plan)) is not None}
    except SyntheticSeriesError:
        return {}


def _metrics(plan: SloTestPlan) -> set[str]:
    queries = plan.queries
    return {s.metric for s in (queries.total, queries.bad, queries.good) if s is not None}


def _apart(plans: list[SloTestPlan]) -> list[list[SloTestPlan]]:
    """The SLOs in sets whose SLIs read no metric in common: one SLO's series cannot reach another's rules,
    so their scenarios can share a test group."""
    sets: list[tuple[set[str], list[SloTestPlan]]] = []
    for plan in plans:
        metrics = _metrics(plan)
        home = next((s for s in sets if not s[0] & metrics), None)
        if home is None:
            sets.append((metrics, [plan]))
        else:
            home[0].update(metrics)
            home[1].append(plan)
    return [members for _, members in sets]


def _one_group(tests: list[dict[str, Any]]) -> dict[str, Any]:
    """The same scenario of SLOs apart in one test group: promtool evaluates every rule of the file over a
    group's whole time range, so one group costs what its longest scenario costs, not the sum."""
    if len(tests) == 1:
        return tests[0]
    [interval] = {t["interval"] for t in tests}
    inputs: list[dict[str, str]] = []
    for series in (s for t in tests for s in t["input_series"]):
        if series not in inputs:  # the absent scenarios' unrelated series
            inputs.append(series)
    group: dict[str, Any] = {"name": " | ".join(t["name"] for t in tests), "interval": interval}
    group["input_series"] = inputs
    for key in ("alert_rule_test", "promql_expr_test"):
        if checks := [c for t in tests for c in t.get(key, [])]:
            group[key] = checks
    return group


def _grouped(plans: list[SloTestPlan], cases: tuple[Any, ...], absent: bool) -> list[dict[str, Any]]:
    """Each scenario of every SLO, one test group per scenario and set of SLOs apart."""
    tests = []
    for members in _apart(plans):
        scenarios = [_traffic_tests(plan, cases) for plan in members]
        tests += [_one_group(found) for case in cases if (found := [s[case] for s in scenarios if case in s])]
        if absent:
            tests.append(_one_group([absent_test(plan) for plan in members]))
    return tests


def _test_file(
    config: StackConfig, service: Service, minutes: int, tests: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "rule_files": [rules_file_name(service)],
        "evaluation_interval": _minutes(minutes),
        "group_eval_order": [g["name"] for g in rule_groups(config, service)],
        "tests": tests,
    }


def promtool_tests(config: StackConfig, service: Service) -> dict[str, Any]:
    """The promtool unit-test file of one service, next to its rules file: every scenario of each SLO that
    runs in minutes or hours, and the absent one."""
    plans = [SloTestPlan(config, service, slo) for slo in service.slos]
    return _test_file(config, service, 1, _grouped(plans, TRAFFIC_CASES, absent=True))


def long_promtool_tests(config: StackConfig, service: Service) -> dict[str, Any]:
    """The scenarios that need days of data, evaluated every LONG_EVALUATION_MINUTES."""
    plans = [SloTestPlan(config, service, slo) for slo in service.slos]
    return _test_file(config, service, LONG_EVALUATION_MINUTES, _grouped(plans, LONG_CASES, absent=False))


def tests_file_name(service: Service) -> str:
    return f"{service.name}.test.yml"


def long_tests_file_name(service: Service) -> str:
    return f"{service.name}.long.test.yml"
