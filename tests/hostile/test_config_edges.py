"""Careless and hostile stack configs: refused at the edge, exit 2, with the key path, never echoing a
secret; nothing a value holds reaches the syntax of a generated file."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components.config import ConfigError, parse_stack_config
from components.registry.manifests import htpasswd_line
from roadbike.stackfile import read_stack_file
from tests.helpers import parse, roadbike, stack_raw, write_stack

Edit = Callable[[dict[str, Any]], None]


def refused(edit: Edit, stack: str = "dev") -> list[str]:
    raw = stack_raw(stack)
    edit(raw)
    with pytest.raises(ConfigError) as caught:
        parse(raw)
    return caught.value.problems


def _set(path: str, value: Any) -> Edit:
    def change(raw: dict[str, Any]) -> None:
        node: Any = raw
        steps = [int(p) if p.isdigit() else p for p in path.split(".")]
        for step in steps[:-1]:
            if isinstance(step, str) and step not in node:
                node[step] = {}
            node = node[step]
        node[steps[-1]] = value

    return change


# --- 2. no config value reaches the syntax of a generated file ------------------------------------------

SYNTAX = [
    ("services.0.name", "go-http-server\n", "roadbike:services[0].name"),
    ("services.0.version", "1.4.2\n", "roadbike:services[0].version"),
    ("services.0.version", "1.\u0664.2", "roadbike:services[0].version"),  # Arabic-Indic digit
    ("services.0.goVersion", "1.2\u0663", "roadbike:services[0].goVersion"),
    ("services.0.repository", "go-http-server\n", "roadbike:services[0].repository"),
    ("kubernetes.namespace", "delivery-dev\n", "roadbike:kubernetes.namespace"),
    ("registry.username", "roadbike\nintruder:$2y$05$abc", "roadbike:registry.username"),
    ("registry.username", "user:name", "roadbike:registry.username"),
    ("registry.username", "user name", "roadbike:registry.username"),
    ("github.owner", "acme\u202e", "roadbike:github.owner"),
    (
        "prometheus.runbookBaseUrl",
        "https://runbooks.example/{{ $labels.x }}",
        "roadbike:prometheus.runbookBaseUrl",
    ),
    ("prometheus.url", "https://prom.example/\n", "roadbike:prometheus.url"),
    ("prometheus.ruleSelectorLabels", {"release": "x\n"}, "roadbike:prometheus.ruleSelectorLabels"),
    (
        "services.0.slos.0.sli.total",
        'http_requests_total{code=~"5.."}\n',
        "roadbike:services[0].slos[0].sli.total",
    ),
    ("services.0.chaos.0.schedule", "@every 5m\n", "roadbike:services[0].chaos[0].schedule"),
]


@pytest.mark.parametrize(("path", "value", "key"), SYNTAX, ids=[f"{p}={v!r}" for p, v, _ in SYNTAX])
def test_values_that_would_reach_generated_syntax_are_refused(path: str, value: Any, key: str) -> None:
    lines = refused(_set(path, value))
    assert any(f": {key}" in line for line in lines), lines


def test_the_htpasswd_line_cannot_be_two_lines() -> None:
    with pytest.raises(ValueError):
        htpasswd_line("roadbike\nintruder", "$2y$05$hash")
    with pytest.raises(ValueError):
        htpasswd_line("user:name", "$2y$05$hash")


def test_a_newline_in_a_service_name_is_exit_2_not_a_traceback(tmp_path: Path) -> None:
    raw = stack_raw("dev")
    raw["services"][0]["name"] = "go-http-server\n"
    stack = write_stack(tmp_path / "Pulumi.nl.yaml", raw)
    result = roadbike("plan", "--stack", "nl", "--config-file", str(stack), "--out", str(tmp_path / "o"))
    assert result.returncode == 2, result.stderr
    assert "roadbike:services[0].name" in result.stderr and "Traceback" not in result.stderr


# --- 3. GitHub names compared as GitHub compares them ----------------------------------------------------


def test_repositories_differing_only_in_case_are_one_repository() -> None:
    lines = refused(
        lambda raw: raw["services"][1].update(repository=raw["services"][0]["repository"].upper())
    )
    assert any("roadbike:services[1].repository" in line and "duplicate" in line for line in lines), lines


def test_a_git_suffix_is_refused() -> None:
    lines = refused(_set("services.0.repository", "go-http-server.git"))
    assert any("roadbike:services[0].repository" in line for line in lines), lines


# --- 5. scope is checked, not declared -------------------------------------------------------------------


def test_dev_rules_in_the_prod_namespace_are_refused() -> None:
    lines = refused(_set("kubernetes.namespace", "delivery-prod"))
    assert any("roadbike:kubernetes.namespace" in line and "prod" in line for line in lines), lines


def test_a_prod_stack_must_name_prod_in_its_namespace() -> None:
    lines = refused(_set("kubernetes.namespace", "delivery"), stack="prod")
    assert any("roadbike:kubernetes.namespace" in line for line in lines), lines


@pytest.mark.parametrize("namespace", ["kube-system", "kube-public", "default", "cert-manager"])
def test_system_namespaces_are_refused_for_the_platform(namespace: str) -> None:
    lines = refused(_set("kubernetes.namespace", namespace))
    assert any("roadbike:kubernetes.namespace" in line and "system namespace" in line for line in lines)


@pytest.mark.parametrize(
    "deployer",
    [
        {"kind": "Group", "name": "system:authenticated"},
        {"kind": "Group", "name": "system:serviceaccounts"},
        {"kind": "User", "name": "system:anonymous"},
        {"kind": "ServiceAccount", "name": "ci", "namespace": "kube-system"},
    ],
)
def test_the_chaos_deployer_cannot_be_a_system_identity_or_elsewhere(deployer: dict[str, str]) -> None:
    lines = refused(_set("kubernetes.deployer", deployer))
    assert any("roadbike:kubernetes.deployer" in line for line in lines), lines


# --- 6. generated rules stay valid: selectors and regexes -------------------------------------------------

SELECTORS = [
    'http_requests_total{namespace=~".+"}',
    'http_requests_total{job=~".+"}',
    'http_requests_total{code=~"5{2000000000}"}',
    'http_requests_total{code=~"(a+)+$"}',
    'http_requests_total{code=~"(5.."}',
    'http_requests_total{code=~"' + "a" * 300 + '"}',
]


@pytest.mark.parametrize("selector", SELECTORS)
def test_selectors_that_escape_their_scope_or_explode_are_refused(selector: str) -> None:
    started = time.monotonic()
    lines = refused(_set("services.0.slos.0.sli.errors", selector))
    assert time.monotonic() - started < 1
    assert any("roadbike:services[0].slos[0].sli.errors" in line for line in lines), lines


# --- 8. secrets -----------------------------------------------------------------------------------------


def external(password: Any) -> Edit:
    return _set(
        "registry",
        {"mode": "external", "host": "registry.example.test", "username": "u", "password": password},
    )


def test_a_plaintext_registry_password_is_refused() -> None:
    raw = stack_raw("dev")
    external("hunter2-plain")(raw)
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(raw, "stacks/Pulumi.test.yaml")  # as written in the file: no secure:
    [line] = [p for p in caught.value.problems if "roadbike:registry.password" in p]
    assert "must be a secret" in line and "hunter2-plain" not in line


@pytest.mark.parametrize(
    "registry",
    [
        "external:hunter2-shaped",
        ["hunter2-shaped"],
        {"mode": "nope", "password": "hunter2-shaped"},
        {"mode": "external", "password": {"nested": "hunter2-shaped"}},
        {"mode": "external", "host": "r.example", "username": "u", "password": "hunter2-shaped\n"},
    ],
)
def test_no_message_prints_what_a_secret_key_holds(registry: Any) -> None:
    raw = stack_raw("dev")
    raw["registry"] = registry
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(raw, "stacks/Pulumi.test.yaml", [("registry", "password")])
    assert not any("hunter2" in line for line in caught.value.problems), caught.value.problems


@pytest.mark.parametrize(
    ("path", "url"),
    [
        ("github.webhookUrl", "https://user:pass@hooks.example/x"),
        ("prometheus.url", "https://admin:admin@prometheus.example"),
        ("prometheus.runbookBaseUrl", "https://runbooks.example/x?token=abc"),
        ("services.0.probe.url", "https://u:p@go-http-server.example/healthz"),
    ],
)
def test_credentials_in_urls_are_refused(path: str, url: str) -> None:
    lines = refused(_set(path, url))
    assert any("credential" in line for line in lines), lines
    assert not any("pass@" in line or "admin:admin" in line for line in lines), lines


# --- 7. bounded parsing ---------------------------------------------------------------------------------

BOMB = """config:
  roadbike:environment: dev
  other:key: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
""" + "".join(
    f"  other:k{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]\n"
    for i in range(1, 10)
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BOMB, "YAML aliases"),
        ("config:\n  other:k: " + "[" * 5000 + "]" * 5000 + "\n", "nest"),
        ("config:\n  roadbike:environment: dev\n  roadbike:environment: prod\n", "duplicate key"),
        ("config:\n  other:k: !!binary aGVsbG8=\n", "!!binary"),
        ("config:\n  other:k: " + "9" * 5000 + "\n", "cannot be read"),
        ("config:\n  other:k: <<: {}\n", ""),
        ("config:\n  other:k: '" + "x" * (2 << 20) + "'\n", "larger than"),
    ],
    ids=["alias-bomb", "deep", "duplicate", "binary", "huge-int", "merge", "big"],
)
def test_stack_files_are_parsed_within_bounds(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text(text)
    started = time.monotonic()
    try:
        read_stack_file(path, "stacks/Pulumi.x.yaml")
    except ConfigError as error:
        assert all(line.startswith("stacks/Pulumi.x.yaml: ") for line in error.problems)
        assert expected in " ".join(error.problems)
    else:
        assert expected == ""
    assert time.monotonic() - started < 1


def test_an_alias_bomb_is_exit_2_in_well_under_a_second(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.bomb.yaml"
    path.write_text(BOMB)
    started = time.monotonic()
    result = roadbike("plan", "--stack", "bomb", "--config-file", str(path), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "YAML aliases" in result.stderr, result.stderr
    assert time.monotonic() - started < 20  # the process start included; parsing itself is milliseconds


# --- 11. the small ones ---------------------------------------------------------------------------------

SMALL = [
    ("github.prodReviewers", [True], "roadbike:github.prodReviewers[0]"),
    ("github.prodReviewers", [0, -1], "roadbike:github.prodReviewers[0]"),
    ("github.prodReviewers", ["4242001"], "roadbike:github.prodReviewers[0]"),
    ("github.deployerAppId", True, "roadbike:github.deployerAppId"),
    ("services.0.chaos.2.gracePeriod", 10**30, "roadbike:services[0].chaos[2].gracePeriod"),
    ("services.0.chaos.2.gracePeriod", "1e30", "roadbike:services[0].chaos[2].gracePeriod"),
    ("services.0.chaos.2.schedule", "@every 1ms", "roadbike:services[0].chaos[2].schedule"),
    ("services.0.chaos.2.schedule", "* * * * * *", "roadbike:services[0].chaos[2].schedule"),
    ("services.0.chaos.0.duration", "9999h", "roadbike:services[0].chaos[0].duration"),
    ("services.0.chaos.0.latency", "10m", "roadbike:services[0].chaos[0].latency"),
    ("registry.host", "docker.io", "roadbike:registry"),
    ("registry.host", "ghcr.io", "roadbike:registry"),
    ("github.webhookUrl", "https://127.0.0.1/hook", "roadbike:github.webhookUrl"),
    ("github.webhookUrl", "https://169.254.169.254/latest", "roadbike:github.webhookUrl"),
    ("github.webhookUrl", "https://[::1]/hook", "roadbike:github.webhookUrl"),
    ("github.webhookUrl", "https://0.0.0.0/hook", "roadbike:github.webhookUrl"),
    ("github.webhookUrl", "https://localhost/hook", "roadbike:github.webhookUrl"),
    ("services.0.slos.0.objective", ".nan", "roadbike:services[0].slos[0].objective"),
]


@pytest.mark.parametrize(("path", "value", "key"), SMALL, ids=[f"{p}={v!r}" for p, v, _ in SMALL])
def test_out_of_bounds_values_are_refused(path: str, value: Any, key: str) -> None:
    lines = refused(_set(path, value))
    assert any(f": {key}" in line for line in lines), lines


@pytest.mark.parametrize(
    "value",
    ["2024-01-01", "2024-01-01T10:00:00Z", "!!set {a, b}", "[1, {x: 2024-01-01}]", ".inf", "~", "{1: 2}"],
)
def test_other_programs_keys_never_crash_the_plan(tmp_path: Path, value: str) -> None:
    path = Path("stacks/Pulumi.dev.yaml")
    text = path.read_text() + f"  otherprogram:setting: {value}\n"
    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text(text)
    result = roadbike("plan", "--stack", "dev", "--config-file", str(stack), "--out", str(tmp_path / "o"))
    assert result.returncode in (0, 2), result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    if result.returncode == 2:
        assert "stacks/" in result.stderr or str(stack) in result.stderr
