"""The `le` values a histogram's threshold bucket may carry, as one anchored regex.

`le` is a label, compared as text: the same bound is `0.3` from client_golang, `0.30` from a hand-written
exporter, `1.0` where Prometheus 3 (or a protobuf scrape, or Python's client) writes `1`, and
`0.30000000000000004` where a pod built its buckets with `prometheus.LinearBuckets(0.1, 0.1, 5)`. The regex
accepts every plain decimal spelling of a number that agrees with the threshold on its first
`AGREEING_DIGITS` significant digits: wide enough for float artefacts (a few units in the 16th digit),
narrow enough that no other bucket a histogram would have can match.
"""

from __future__ import annotations

import re
from decimal import Decimal

AGREEING_DIGITS = 12


def _plain(value: Decimal) -> tuple[str, str]:
    """(integer part, fraction) of a positive decimal without exponent: 0.30 -> ("0", "3")."""
    text = format(value.normalize(), "f")
    whole, _, fraction = text.partition(".")
    return whole, fraction


def _decimal_places(value: Decimal) -> int:
    """How many decimal places hold the value's first AGREEING_DIGITS significant digits."""
    return max(0, AGREEING_DIGITS - 1 - value.adjusted())


def _whole_pattern(whole: str) -> str:
    return "0*" if whole == "0" else "0*" + whole


def _spellings_from(value: Decimal, places: int) -> list[str]:
    """The value itself with any trailing zeros, and anything that starts with it to `places` decimals."""
    whole, fraction = _plain(value)
    padded = fraction.ljust(places, "0")
    exact = rf"{_whole_pattern(whole)}\.{fraction}0*" if fraction else rf"{_whole_pattern(whole)}(\.0*)?"
    return [exact, rf"{_whole_pattern(whole)}\.{padded}[0-9]*"]


def _spellings_below(value: Decimal, places: int) -> str:
    """Numbers just under the value that round to it: 0.299999999999..., 0.99999999999... for 1."""
    below = value - Decimal(1).scaleb(-places)
    whole, fraction = _plain(below)
    return rf"{_whole_pattern(whole)}\.{fraction.ljust(places, '0')}[0-9]*"


def threshold_le_regex(threshold: float) -> str:
    """An RE2 pattern (anchored by Prometheus) matching every spelling of `threshold` as an `le` value."""
    value = Decimal(repr(threshold))
    places = _decimal_places(value)
    alternatives = [*_spellings_from(value, places), _spellings_below(value, places)]
    return "|".join(alternatives)


def le_matches(threshold: float, le: str) -> bool:
    """Whether a bucket labelled `le` is the threshold's bucket (as Prometheus would match it)."""
    return re.fullmatch(threshold_le_regex(threshold), le) is not None
