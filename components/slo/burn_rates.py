"""The SLO arithmetic: the period, the alert windows, the burn-rate tiers of the SRE workbook and the
error budget each objective leaves, as exact decimals and as Prometheus writes numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from components.config import Slo

PERIODS = ("28d", "30d")


PAGE = "page"


TICKET = "ticket"


ABSENT_FOR = "10m"


# How long the SLI's series must be gone, having existed within VANISHED_LOOKBACK, before it pages.
VANISHED_FOR = "5m"


VANISHED_LOOKBACK = "1d"


# The windows the alerts read, shortest first.
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


WINDOW_MINUTES = {"m": 1, "h": 60, "d": 1440}


# A window's data coverage is measured at 1/COVERAGE_STEPS of the window (1m for 1h, 72m for 3d).
COVERAGE_STEPS = 60


@dataclass(frozen=True)
class BurnTier:
    """One window pair of the multiwindow, multi-burn-rate alerts: it fires once `budget_share` of the
    period's error budget is spent within its long window (SRE workbook table 5-8, and 1d/2h at 10%)."""

    severity: str
    long: str
    short: str
    budget_share: Decimal

    def burn(self, period: str) -> Decimal:
        """The burn rate that spends `budget_share` in the long window: share x period / long window."""
        exact = self.budget_share * window_minutes(period) / window_minutes(self.long)
        return exact.quantize(Decimal("0.000001")).normalize()

    def period_fraction(self, period: str) -> Decimal:
        """The long window as a share of the period: 1h / 30d = 1/720."""
        return Decimal(window_minutes(self.long)) / window_minutes(period)


TIERS = (
    BurnTier(PAGE, "1h", "5m", Decimal("0.02")),
    BurnTier(PAGE, "6h", "30m", Decimal("0.05")),
    BurnTier(TICKET, "1d", "2h", Decimal("0.1")),
    BurnTier(TICKET, "3d", "6h", Decimal("0.1")),
)


LONG_WINDOWS = tuple(tier.long for tier in TIERS)


def window_minutes(window: str) -> int:
    return int(window[:-1]) * WINDOW_MINUTES[window[-1]]


def go_float(value: float) -> str:
    """`value` as Go's strconv.FormatFloat(v, 'g', -1, 64) writes it: how client_golang writes `le`."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    _, digit_tuple, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + int(exponent)  # digits before the decimal point
    if point - 1 < -4 or point - 1 >= 6:  # Go uses %e outside this range for the shortest form
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        power = point - 1
        return f"{sign}{mantissa}e{'-' if power < 0 else '+'}{abs(power):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def decimal_text(value: Decimal) -> str:
    """A decimal without exponent or trailing zeros: 0.0720 -> 0.072, 1E+2 -> 100."""
    return format(value.normalize(), "f")


def percent_text(ratio: Decimal) -> str:
    return decimal_text(ratio * 100) + "%"


def objective_ratio(slo: Slo) -> Decimal:
    return Decimal(repr(slo.objective)) / 100


def error_budget(slo: Slo) -> Decimal:
    """The share of requests allowed to fail: 1 - objective (0.005 for 99.5%)."""
    return 1 - objective_ratio(slo)


def burn_threshold(slo: Slo, tier: BurnTier) -> Decimal:
    """The error ratio above which a window burns the budget `tier.burn` times too fast."""
    return tier.burn(slo.period) * error_budget(slo)


def coverage_step(window: str) -> str:
    """The resolution at which a window's coverage is measured: 1m for 1h, 24m for 1d, 12h for 30d."""
    return f"{window_minutes(window) // COVERAGE_STEPS}m"
