"""Reading `stacks/Pulumi.<stack>.yaml` the way the Pulumi CLI hands it to the program."""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.config import PROJECT, ConfigError, StackConfig, parse_stack_config

# `pulumi preview` decrypts `secure:` values; offline there is no key, so each one gets a stand-in
# that is still marked secret, which is all the program and the policies may rely on.
SECRET_STAND_IN = "roadbike-plan-secret"

# Bounds on what is parsed at all: a stack file is a page of config, not a data set.
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_NODES = 100_000


class _StackFileProblem(Exception):
    def __init__(self, message: str, mark: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with no aliases (so no alias bomb), no duplicate keys, bounded nesting and
    node count, and only JSON types: timestamps stay the text they were written as, binary and sets are
    refused."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _StackFileProblem(
                f"YAML aliases (*{event.anchor}) are not accepted: write the value out", event.start_mark
            )
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _StackFileProblem(f"more than {MAX_NODES} YAML nodes", self.peek_event().start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _StackFileProblem(
                    f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise _StackFileProblem("YAML merge keys (<<) are not accepted", key_node.start_mark)
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, (str, int, float, bool)) and key is not None:
                    raise _StackFileProblem("a mapping key must be a scalar", key_node.start_mark)
                if key in seen:
                    raise _StackFileProblem(f"duplicate key {str(key)[:80]!r}", key_node.start_mark)
                seen.add(key)
        return yaml.constructor.SafeConstructor.construct_mapping(self, node, deep=deep)


def _as_text(loader: BoundedLoader, node: Any) -> str:
    return str(loader.construct_scalar(node))


def _refused(what: str) -> Any:
    def construct(loader: BoundedLoader, node: Any) -> Any:
        raise _StackFileProblem(f"{what} values are not accepted in a stack file", node.start_mark)

    return construct


BoundedLoader.add_constructor("tag:yaml.org,2002:timestamp", _as_text)
BoundedLoader.add_constructor("tag:yaml.org,2002:binary", _refused("!!binary"))
BoundedLoader.add_constructor("tag:yaml.org,2002:set", _refused("!!set"))
BoundedLoader.add_constructor("tag:yaml.org,2002:omap", _refused("!!omap"))
BoundedLoader.add_constructor("tag:yaml.org,2002:pairs", _refused("!!pairs"))


_CLoader: type | None = getattr(yaml, "CSafeLoader", None)


def _check_events(text: str) -> None:
    """One pass over libyaml's events: no alias, bounded depth and node count (marks for the message)."""
    assert _CLoader is not None
    depth = nodes = 0
    for event in yaml.parse(text, Loader=_CLoader):
        if isinstance(event, yaml.AliasEvent):
            raise _StackFileProblem(
                f"YAML aliases (*{event.anchor}) are not accepted: write the value out", event.start_mark
            )
        if isinstance(event, yaml.NodeEvent):
            nodes += 1
            if nodes > MAX_NODES:
                raise _StackFileProblem(f"more than {MAX_NODES} YAML nodes", event.start_mark)
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH - 1:
                raise _StackFileProblem(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


if _CLoader is not None:

    class FastBoundedLoader(_CLoader):  # type: ignore[valid-type, misc]
        """libyaml's parser (a megabyte in milliseconds), after `_check_events`; the same constructors."""

        construct_mapping = BoundedLoader.construct_mapping

    for _tag, _constructor in BoundedLoader.yaml_constructors.items():
        FastBoundedLoader.add_constructor(_tag, _constructor)


def _load(text: str) -> Any:
    if _CLoader is None:
        loader: Any = BoundedLoader(text)
    else:
        _check_events(text)
        loader = FastBoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _json_safe(value: Any) -> Any:
    """Keys as text, non-finite floats as the text YAML wrote (Pulumi hands every value on as JSON)."""
    if isinstance(value, dict):
        return {(k if isinstance(k, str) else _key_text(k)): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value


def _key_text(key: Any) -> str:
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def _flow_depth_problem(text: str, limit: int = 2 * MAX_DEPTH) -> str | None:
    """A cheap scan for `[`/`{` nesting before PyYAML sees the text: its scanner slows down with the square
    of the flow nesting (1000 levels take seconds), long before the composer's depth bound is reached."""
    depth, line, column, quote = 0, 1, 0, ""
    previous = "\n"
    index = 0
    while index < len(text):
        char = text[index]
        column += 1
        if char == "\n":
            line, column = line + 1, 0
        if quote:
            if quote == '"' and char == "\\":
                index += 2
                column += 1
                previous = ""
                continue
            if char == quote:
                quote = ""
        elif char in "\"'" and (previous in " \t\n[{,:" or depth):
            quote = char
        elif char == "#" and previous in " \t\n":
            end = text.find("\n", index)
            index = len(text) if end < 0 else end
            previous = ""
            column -= 1
            continue
        elif char in "[{":
            depth += 1
            if depth > limit:
                return f"nested deeper than {MAX_DEPTH} levels (line {line}, column {column})"
        elif char in "]}":
            depth = max(0, depth - 1)
        previous = char
        index += 1
    return None


def parse_yaml_text(text: str, shown: str) -> Any:
    """The document, or ConfigError with the line and column of the first problem."""
    depth_problem = _flow_depth_problem(text) if _CLoader is None else None  # libyaml bounds it itself
    if depth_problem:
        raise ConfigError([f"{shown}: {depth_problem}"])
    try:
        return _json_safe(_load(text))
    except _StackFileProblem as problem:
        where = f" (line {problem.mark.line + 1}, column {problem.mark.column + 1})" if problem.mark else ""
        raise ConfigError([f"{shown}: {problem.message}{where}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(
            [f"{shown}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}"]
        ) from None
    except (ValueError, OverflowError, RecursionError) as exc:  # e.g. an integer of 5000 digits
        raise ConfigError([f"{shown}: a value cannot be read: {str(exc)[:200]}"]) from None


@dataclass
class StackFile:
    path: Path
    display: str
    raw: dict[str, Any]
    text: str = ""
    secret_keys: list[str] = field(default_factory=list)
    other_config: dict[str, Any] = field(default_factory=dict)
    secret_paths: list[tuple[str | int, ...]] = field(default_factory=list)  # `roadbike:` keys only
    notices: list[str] = field(default_factory=list)  # what the plan supplied in the file's place

    def pulumi_config(self) -> dict[str, str]:
        """All config as the engine passes it to a program: namespaced keys, JSON text for structures."""
        merged = {f"{PROJECT}:{k}": v for k, v in self.raw.items()} | self.other_config
        return {k: v if isinstance(v, str) else engine_json(v) for k, v in merged.items()}


def engine_json(value: Any) -> str:
    """A structured config value as the engine's text of it (Go's json.Marshal: compact, keys sorted,
    `<`, `>`, `&`, U+2028 and U+2029 escaped)."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    for char in "<>&\u2028\u2029":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text


def _replace_secure(value: Any, path: tuple[str | int, ...], found: list[tuple[str | int, ...]]) -> Any:
    """The value with each `{secure: ...}` replaced by the stand-in; their key paths go to `found`."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            found.append(path)
            return SECRET_STAND_IN
        return {k: _replace_secure(v, (*path, str(k)), found) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_secure(v, (*path, index), found) for index, v in enumerate(value)]
    return value


def stack_file_path(project_dir: Path, stack: str) -> Path:
    return project_dir / "stacks" / f"Pulumi.{stack}.yaml"


def read_stack_file(path: Path, display: str | None = None) -> StackFile:
    shown = display or str(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError([f"{shown}: stack config file not found"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{shown}: is a directory, not a stack config file"]) from None
    except OSError as exc:
        raise ConfigError([f"{shown}: cannot be read: {exc.strerror or exc}"]) from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(
            [f"{shown}: larger than {MAX_FILE_BYTES // 1024} KiB; a stack file is not that big"]
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError([f"{shown}: not UTF-8 text"]) from None
    document = parse_yaml_text(text, shown)
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError([f"{shown}: the top level must be a mapping with a `config:` key"])
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError([f"{shown}: config: must be a mapping of `namespace:key: value`"])
    raw: dict[str, Any] = {}
    other: dict[str, Any] = {}
    secret_keys: list[str] = []
    secret_paths: list[tuple[str | int, ...]] = []
    for key, value in config.items():
        own = key.startswith(f"{PROJECT}:") if isinstance(key, str) else False
        name = str(key).removeprefix(f"{PROJECT}:") if own else str(key)
        found: list[tuple[str | int, ...]] = []
        plain = _replace_secure(value, (name,), found)
        if found:
            secret_keys.append(str(key))
            if own:
                secret_paths += found
        (raw if own else other)[name] = plain
    return StackFile(
        path=path,
        display=shown,
        raw=raw,
        text=text,
        secret_keys=sorted(secret_keys),
        other_config=other,
        secret_paths=secret_paths,
    )


def _stand_in_registry_password(stack_file: StackFile) -> None:
    """An external registry's password is set by its operator with `pulumi config set --secret`, never
    committed: where the file has none, the offline plan takes a secret stand-in, as for every secret."""
    registry = stack_file.raw.get("registry")
    if not isinstance(registry, dict) or "password" in registry:
        return
    if registry.get("mode") == "external" and registry.get("username") is not None:
        stack_file.raw["registry"] = {**registry, "password": SECRET_STAND_IN}
        stack_file.secret_paths.append(("registry", "password"))
        stack_file.secret_keys = sorted({*stack_file.secret_keys, f"{PROJECT}:registry"})
        stack_file.notices.append(
            f"{stack_file.display}: {PROJECT}:registry.password is not set (its operator sets it with "
            "`pulumi config set --secret`); the plan uses a secret stand-in"
        )


def load_stack(path: Path, display: str | None = None) -> tuple[StackFile, StackConfig]:
    stack_file = read_stack_file(path, display)
    _stand_in_registry_password(stack_file)
    return stack_file, parse_stack_config(stack_file.raw, stack_file.display, stack_file.secret_paths)
