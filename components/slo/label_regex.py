"""Label regexes (RE2, as Prometheus anchors them: `^(?:re)$`) parsed into a tree, matched and exemplified
from that tree. No user regex ever runs in Python's backtracking engine: matching follows the set of
positions each node can end at, which is polynomial in the text and the pattern whatever they are.

The grammar is RE2's for what label regexes use: literals and escapes, `.`, classes (ranges, negation,
`\\d \\w \\s` and their negations, `[:alpha:]`-style names), groups (`(...)`, `(?:...)`, named),
alternation, the quantifiers `* + ? {n} {n,} {n,m}` (lazy or not: the same for a whole-string match), and
`^`/`$`. Anything else (flags, word boundaries, Unicode classes) is `RegexUnsupported`: no example is made
from it and it matches nothing here, which only costs a synthetic test, never a wrong one.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_CODE_POINT = 0x10FFFF
MAX_REPEAT = 1000  # RE2's own limit on {n,m}


class RegexSyntaxError(ValueError):
    """Not a regex RE2 accepts."""


class RegexUnsupported(ValueError):
    """An RE2 construct this module does not model."""


Ranges = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class CharSet:
    ranges: Ranges
    negated: bool = False

    def contains(self, char: str) -> bool:
        code = ord(char)
        inside = any(low <= code <= high for low, high in self.ranges)
        return inside != self.negated


@dataclass(frozen=True)
class Concat:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Alternate:
    options: tuple[Node, ...]


@dataclass(frozen=True)
class Repeat:
    node: Node
    low: int
    high: int | None  # None: unbounded


@dataclass(frozen=True)
class Anchor:
    end: bool  # `$` (else `^`)


Node = CharSet | Concat | Alternate | Repeat | Anchor

_DIGIT: Ranges = ((0x30, 0x39),)
_WORD: Ranges = ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A))
_SPACE: Ranges = ((0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20))
_PERL = {"d": _DIGIT, "w": _WORD, "s": _SPACE}
_POSIX: dict[str, Ranges] = {
    "alnum": ((0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)),
    "alpha": ((0x41, 0x5A), (0x61, 0x7A)),
    "digit": _DIGIT,
    "lower": ((0x61, 0x7A),),
    "upper": ((0x41, 0x5A),),
    "space": ((0x09, 0x0D), (0x20, 0x20)),
    "word": _WORD,
    "xdigit": ((0x30, 0x39), (0x41, 0x46), (0x61, 0x66)),
    "punct": ((0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)),
}
_CONTROL_ESCAPES = {"t": 0x09, "n": 0x0A, "r": 0x0D, "f": 0x0C, "v": 0x0B, "a": 0x07}
_ANY_BUT_NEWLINE = CharSet(((0x0A, 0x0A),), negated=True)


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _complement(ranges: Ranges) -> Ranges:
    result, start = [], 0
    for low, high in sorted(ranges):
        if low > start:
            result.append((start, low - 1))
        start = max(start, high + 1)
    if start <= MAX_CODE_POINT:
        result.append((start, MAX_CODE_POINT))
    return tuple(result)


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.at = 0

    def peek(self, length: int = 1) -> str:
        return self.text[self.at : self.at + length]

    def take(self) -> str:
        if self.at >= len(self.text):
            raise RegexSyntaxError("missing closing bracket or parenthesis")
        char = self.text[self.at]
        self.at += 1
        return char

    def parse(self) -> Node:
        node = self.alternation()
        if self.at < len(self.text):
            raise RegexSyntaxError("unexpected )")
        return node

    def alternation(self) -> Node:
        options = [self.concat()]
        while self.peek() == "|":
            self.at += 1
            options.append(self.concat())
        return options[0] if len(options) == 1 else Alternate(tuple(options))

    def concat(self) -> Node:
        items: list[Node] = []
        while self.at < len(self.text) and self.peek() not in "|)":
            items.append(self.repeated())
        return items[0] if len(items) == 1 else Concat(tuple(items))

    def repeated(self) -> Node:
        if self.peek() in ("*", "+", "?") or self._repetition_ahead():
            raise RegexSyntaxError("missing argument to repetition operator")
        node = self.atom()
        quantified = False
        while True:
            bounds = self._quantifier()
            if bounds is None:
                return node
            if quantified:
                raise RegexSyntaxError("bad repetition operator")
            if isinstance(node, Anchor):
                raise RegexUnsupported("a repeated anchor")
            quantified = True
            node = Repeat(node, *bounds)
            if self.peek() == "?":  # lazy: the same set of whole-string matches
                self.at += 1

    def _repetition_ahead(self) -> bool:
        saved = self.at
        try:
            return self._braces() is not None
        finally:
            self.at = saved

    def _quantifier(self) -> tuple[int, int | None] | None:
        char = self.peek()
        if char in ("*", "+", "?"):
            self.at += 1
            return {"*": (0, None), "+": (1, None), "?": (0, 1)}[char]
        return self._braces()

    def _braces(self) -> tuple[int, int | None] | None:
        """`{n}`, `{n,}`, `{n,m}`; anything else after `{` is a literal `{` (RE2)."""
        if self.peek() != "{":
            return None
        end = self.text.find("}", self.at)
        if end < 0:
            return None
        low_text, comma, high_text = self.text[self.at + 1 : end].partition(",")
        if not _digits(low_text) or (high_text and not _digits(high_text)):
            return None
        low = int(low_text)
        high = int(high_text) if high_text else (None if comma else low)
        if low > MAX_REPEAT or (high is not None and (high > MAX_REPEAT or high < low)):
            raise RegexSyntaxError("bad repetition operator")
        self.at = end + 1
        return low, high

    def atom(self) -> Node:
        char = self.take()
        if char == "(":
            return self.group()
        if char == "[":
            return self.char_class()
        if char == ".":
            return _ANY_BUT_NEWLINE
        if char in "^$":
            return Anchor(end=char == "$")
        if char == "\\":
            return self.escape(in_class=False)
        return CharSet(((ord(char), ord(char)),))

    def group(self) -> Node:
        if self.peek() == "?":
            if self.peek(3) == "?P<" or (self.peek(2) == "?<" and self.peek(3) not in ("?<=", "?<!")):
                name_end = self.text.find(">", self.at)
                if name_end < 0:
                    raise RegexSyntaxError("invalid named capture")
                self.at = name_end + 1
            elif self.peek(2) == "?:":
                self.at += 2
            else:
                raise RegexUnsupported("flags or look-around in a group")
        node = self.alternation()
        if self.take() != ")":
            raise RegexSyntaxError("missing closing )")
        return node

    def escape(self, in_class: bool) -> CharSet:
        char = self.take()
        if char in _PERL:
            return CharSet(_PERL[char])
        if char.lower() in _PERL:
            return CharSet(_PERL[char.lower()], negated=True)
        if char in _CONTROL_ESCAPES:
            return CharSet(((_CONTROL_ESCAPES[char],) * 2,))
        if char == "x":
            return CharSet(((self._hex(),) * 2,))
        if char.isascii() and not char.isalnum():
            return CharSet(((ord(char), ord(char)),))
        raise RegexUnsupported(f"the escape \\{char}")

    def _hex(self) -> int:
        if self.peek() == "{":
            end = self.text.find("}", self.at)
            digits = self.text[self.at + 1 : end] if end > 0 else ""
            self.at = end + 1
        else:
            digits = self.text[self.at : self.at + 2]
            self.at += 2
        try:
            value = int(digits, 16) if digits and len(digits) <= 8 and digits.isascii() else -1
        except ValueError:
            value = -1
        if not 0 <= value <= MAX_CODE_POINT:
            raise RegexSyntaxError("invalid escape sequence")
        return value

    def char_class(self) -> CharSet:
        negated = self.peek() == "^"
        if negated:
            self.at += 1
        ranges: list[tuple[int, int]] = []
        first = True
        while first or self.peek() != "]":
            if self.at >= len(self.text):
                raise RegexSyntaxError("missing closing ]")
            first = False
            if self.peek(2) == "[:":
                end = self.text.find(":]", self.at + 2)
                name = self.text[self.at + 2 : end] if end > 0 else ""
                if name.removeprefix("^") not in _POSIX:
                    raise RegexUnsupported(f"the class [:{name}:]")
                self.at = end + 2
                named = _POSIX[name.removeprefix("^")]
                ranges.extend(_complement(named) if name.startswith("^") else named)
                continue
            low = self._class_char(ranges)
            if low is None:
                continue
            if self.peek() == "-" and self.peek(2) != "-]":
                self.at += 1
                high = self._class_char(ranges)
                if high is None or high < low:
                    raise RegexSyntaxError("invalid character class range")
                ranges.append((low, high))
            else:
                ranges.append((low, low))
        self.at += 1
        return CharSet(tuple(ranges), negated)

    def _class_char(self, ranges: list[tuple[int, int]]) -> int | None:
        """One character of a class; a `\\d`-style escape adds its ranges and gives None."""
        char = self.take()
        if char != "\\":
            return ord(char)
        escaped = self.escape(in_class=True)
        if len(escaped.ranges) == 1 and not escaped.negated and escaped.ranges[0][0] == escaped.ranges[0][1]:
            return escaped.ranges[0][0]
        ranges.extend(_complement(escaped.ranges) if escaped.negated else escaped.ranges)
        return None


def parse(pattern: str) -> Node:
    return _Parser(pattern).parse()


def _ends(node: Node, text: str, starts: frozenset[int]) -> frozenset[int]:
    """Every position the node can end at, having started at one of `starts`."""
    if not starts:
        return starts
    if isinstance(node, CharSet):
        return frozenset(i + 1 for i in starts if i < len(text) and node.contains(text[i]))
    if isinstance(node, Anchor):
        return starts & {len(text) if node.end else 0}
    if isinstance(node, Concat):
        for item in node.items:
            starts = _ends(item, text, starts)
        return starts
    if isinstance(node, Alternate):
        return frozenset().union(*(_ends(option, text, starts) for option in node.options))
    current = starts
    for _ in range(node.low):
        current = _ends(node.node, text, current)
    reached, frontier, count = set(current), current, node.low
    while frontier and (node.high is None or count < node.high):
        frontier = _ends(node.node, text, frontier) - reached
        reached |= frontier
        count += 1
    return frozenset(reached)


def fullmatch(pattern: str, text: str) -> bool:
    """Whether Prometheus' `label=~"pattern"` matches the value `text` (the whole of it)."""
    return len(text) in _ends(parse(pattern), text, frozenset({0}))


_PREFERRED = "0a_-.xA:/ "  # for `.` and negated classes


def _example(node: Node) -> str | None:
    if isinstance(node, CharSet):
        if not node.negated:
            return chr(node.ranges[0][0]) if node.ranges else None
        return next((c for c in _PREFERRED if node.contains(c)), None)
    if isinstance(node, Anchor):
        return ""
    if isinstance(node, Concat):
        parts = [_example(item) for item in node.items]
        return None if any(p is None for p in parts) else "".join(p for p in parts if p is not None)
    if isinstance(node, Alternate):
        return next((e for e in map(_example, node.options) if e is not None), None)
    part = _example(node.node)
    return None if part is None else part * node.low


def example(pattern: str) -> str | None:
    """A short value the pattern matches (checked by `fullmatch`), or None where none is made."""
    try:
        value = _example(parse(pattern))
        return value if value is not None and fullmatch(pattern, value) else None
    except (RegexSyntaxError, RegexUnsupported):
        return None
