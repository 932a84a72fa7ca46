"""PromQL series selectors of the stack config (`metric{label=~"..."}`), parsed into matchers."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from components.slo import label_regex

_MATCHER = re.compile(
    r"""\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*,?"""
)


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str  # unquoted

    def render(self) -> str:
        quoted = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{quoted}"'

    def matches(self, value: str) -> bool:
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        try:
            found = label_regex.fullmatch(self.value, value)
        except (label_regex.RegexSyntaxError, label_regex.RegexUnsupported):
            return False
        return found if self.op == "=~" else not found

    def negated(self) -> Matcher:
        return replace(self, op={"=": "!=", "!=": "=", "=~": "!~", "!~": "=~"}[self.op])


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[Matcher, ...] = ()

    def render(self) -> str:
        if not self.matchers:
            return self.metric
        return self.metric + "{" + ",".join(m.render() for m in self.matchers) + "}"

    def renamed(self, metric: str) -> Selector:
        return replace(self, metric=metric)

    def with_labels(self, labels: dict[str, str]) -> Selector:
        """Adds an equality matcher for each label the selector does not constrain already."""
        constrained = {m.name for m in self.matchers}
        extra = tuple(Matcher(k, "=", v) for k, v in sorted(labels.items()) if k not in constrained)
        return replace(self, matchers=self.matchers + extra)

    def without_label(self, name: str) -> Selector:
        return replace(self, matchers=tuple(m for m in self.matchers if m.name != name))


def _unquote(quoted: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), quoted[1:-1])


def parse_selector(text: str) -> Selector:
    """A selector already checked by the config (`metric` or `metric{label op "value", ...}`)."""
    metric, _, body = text.strip().partition("{")
    body = body.rstrip().removesuffix("}")
    matchers = tuple(Matcher(m.group(1), m.group(2), _unquote(m.group(3))) for m in _MATCHER.finditer(body))
    return Selector(metric.strip(), matchers)
