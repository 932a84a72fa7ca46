"""Reading `stacks/Pulumi.<stack>.yaml` the way the Pulumi CLI hands it to the program."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.config import PROJECT, ConfigError, StackConfig, parse_stack_config

# `pulumi preview` decrypts `secure:` values; offline there is no key, so each one gets a stand-in
# that is still marked secret, which is all the program and the policies may rely on.
SECRET_STAND_IN = "roadbike-plan-secret"


@dataclass
class StackFile:
    path: Path
    display: str
    raw: dict[str, Any]
    secret_keys: list[str] = field(default_factory=list)
    other_config: dict[str, Any] = field(default_factory=dict)
    secret_paths: list[tuple[str | int, ...]] = field(default_factory=list)  # `roadbike:` keys only
    notices: list[str] = field(default_factory=list)  # what the plan supplied in the file's place

    def pulumi_config(self) -> dict[str, str]:
        """All config as the engine passes it to a program: namespaced keys, JSON text for structures."""
        merged = {f"{PROJECT}:{k}": v for k, v in self.raw.items()} | self.other_config
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in merged.items()}


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
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{shown}: stack config file not found"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{shown}: not UTF-8 text"]) from None
    except OSError as exc:
        raise ConfigError([f"{shown}: cannot be read: {exc.strerror or exc}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError([f"{shown}: not valid YAML{where}: {getattr(exc, 'problem', exc)}"]) from None
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
