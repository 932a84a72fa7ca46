"""The GitHub pipeline policies through the real pack over the Analyzer protocol: one passing and at least
one violating case each, the passing cases being what roadbike itself renders."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi.runtime.rpc import UNKNOWN

from components.config import StackConfig
from components.github.ci_workflow import CI_WORKFLOW, ci_required_checks
from components.github.dependabot import DEPENDABOT
from components.github.files import render_files
from components.github.release_workflow import release_workflow_path
from policies.github import PLAINTEXT_SECRETS, plaintext_secret_kinds
from roadbike.analyzer import PolicyPackProcess
from roadbike.program import SECRET_SIG, SECRET_SIG_KEY, ProgramRun, RecordedResource
from tests.helpers import STACKS, analyze_resources, parse, resource, run_raw, stack_raw, violated
from tests.policy_inputs import GITHUB_REPOSITORY, branch_ruleset, repo

FILE = "github:index/repositoryFile:RepositoryFile"
REPOSITORY = "github:index/repository:Repository"
RULESET = "github:index/repositoryRuleset:RepositoryRuleset"
ENVIRONMENT = "github:index/repositoryEnvironment:RepositoryEnvironment"
WEBHOOK = "github:index/repositoryWebhook:RepositoryWebhook"

POLICIES = (
    "workflow-actions-pinned",
    "workflow-no-top-level-write",
    "workflow-no-untrusted-checkout",
    "release-workflow-signs",
    "release-workflow-multi-arch",
    "repository-file-no-plaintext-secret",
    "webhook-secret-and-tls",
    "prod-environment-reviewers",
    "default-branch-requires-ci-checks",
    "default-branch-requires-review",
)
CHECKOUT = "actions/checkout@d23441a48e516b6c34aea4fa41551a30e30af803"


def config_with(signing: str = "keypair", platforms: list[str] | None = None) -> StackConfig:
    raw = stack_raw("dev")
    raw["signing"] = {"mode": signing}
    if platforms is not None:
        raw["services"][0]["platforms"] = platforms
    return parse(raw)


# Every config here is the dev stack's, so its release workflow is the dev tier's.
RELEASE = release_workflow_path(config_with())
assert RELEASE == ".github/workflows/release-dev.yml"


def rendered(config: StackConfig | None = None) -> dict[str, str]:
    config = config or config_with()
    return render_files(config, config.services[0])


def repo_file(path: str, content: str, repository: str = "go-http-server") -> RecordedResource:
    name = f"{repository}-{path.rsplit('/', 1)[-1]}"
    return resource(FILE, name, {"repository": repository, "file": path, "content": content})


def workflow_file(content: str, path: str = ".github/workflows/extra.yml") -> RecordedResource:
    return repo_file(path, content)


def files_of(files: dict[str, str]) -> list[RecordedResource]:
    return [repo_file(path, text) for path, text in files.items()]


def test_every_policy_is_in_the_pack_and_mandatory(pack: PolicyPackProcess) -> None:
    result = analyze_resources(pack, [])
    levels = {p.name: p.enforcement_level for p in result.policies}
    for name in POLICIES:
        assert levels[name] == "mandatory", name


def test_rendered_files_pass_every_workflow_policy(pack: PolicyPackProcess) -> None:
    for config in (config_with("keypair"), config_with("keyless")):
        result = analyze_resources(pack, files_of(rendered(config)))
        for name in POLICIES[:6]:
            assert violated(result, name) == [], name


# --- workflow-actions-pinned -----------------------------------------------------------------------

UNPINNED = f"""
name: extra
on: push
permissions: {{}}
jobs:
  call:
    uses: acme/workflows/.github/workflows/build.yml@main
  run:
    runs-on: ubuntu-24.04
    steps:
      - uses: {CHECKOUT}
      - uses: actions/setup-go@v6
      - uses: ./.github/actions/local
      - uses: docker://alpine@sha256:{"a" * 64}
      - uses: docker://alpine:3.20
"""


def test_unpinned_actions_violate(pack: PolicyPackProcess) -> None:
    [message] = violated(analyze_resources(pack, [workflow_file(UNPINNED)]), "workflow-actions-pinned")
    assert "acme/workflows/.github/workflows/build.yml@main" in message
    assert "actions/setup-go@v6" in message and "docker://alpine:3.20" in message
    assert CHECKOUT not in message and "./.github/actions/local" not in message and "sha256" not in message


# --- workflow-no-top-level-write -------------------------------------------------------------------


def permissions_workflow(permissions: str) -> str:
    return f"name: p\non: push\n{permissions}jobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: true\n"


@pytest.mark.parametrize(
    ("permissions", "expected"),
    [
        ("permissions: write-all\n", "write-all"),
        ("permissions:\n  contents: write\n  id-token: write\n  checks: read\n", "contents, id-token: write"),
        ("", "no top-level permissions"),
    ],
)
def test_top_level_write_permissions_violate(
    pack: PolicyPackProcess, permissions: str, expected: str
) -> None:
    result = analyze_resources(pack, [workflow_file(permissions_workflow(permissions))])
    [message] = violated(result, "workflow-no-top-level-write")
    assert expected in message and "permissions: {}" in message


def test_read_only_top_level_permissions_pass(pack: PolicyPackProcess) -> None:
    for permissions in ("permissions: {}\n", "permissions: read-all\n", "permissions:\n  contents: read\n"):
        result = analyze_resources(pack, [workflow_file(permissions_workflow(permissions))])
        assert violated(result, "workflow-no-top-level-write") == [], permissions


# --- workflow-no-untrusted-checkout ----------------------------------------------------------------


def privileged(trigger: str, step: str) -> str:
    return (
        f"name: t\non:\n  {trigger}:\npermissions: {{}}\njobs:\n  triage:\n    runs-on: ubuntu-24.04\n"
        f"    steps:\n{step}"
    )


HEAD_CHECKOUT = (
    f"      - uses: {CHECKOUT}\n        with:\n          ref: ${{{{ github.event.pull_request.head.sha }}}}\n"
)
BASE_CHECKOUT = f"      - uses: {CHECKOUT}\n        with:\n          persist-credentials: false\n"
RUN_FETCH = "      - run: git fetch origin ${{ github.event.workflow_run.head_sha }} && make\n"


def test_untrusted_checkout_in_privileged_workflows_violates(pack: PolicyPackProcess) -> None:
    cases = [privileged("pull_request_target", HEAD_CHECKOUT), privileged("workflow_run", RUN_FETCH)]
    result = analyze_resources(
        pack, [workflow_file(c, f".github/workflows/t{i}.yml") for i, c in enumerate(cases)]
    )
    messages = violated(result, "workflow-no-untrusted-checkout")
    assert len(messages) == 2
    assert any("pull_request_target" in m for m in messages) and any("workflow_run" in m for m in messages)


def test_privileged_workflow_on_base_code_and_pull_request_checkout_pass(pack: PolicyPackProcess) -> None:
    cases = [privileged("pull_request_target", BASE_CHECKOUT), privileged("pull_request", HEAD_CHECKOUT)]
    result = analyze_resources(
        pack, [workflow_file(c, f".github/workflows/t{i}.yml") for i, c in enumerate(cases)]
    )
    assert violated(result, "workflow-no-untrusted-checkout") == []


# --- release-workflow-signs ------------------------------------------------------------------------


def test_release_without_signing_violates(pack: PolicyPackProcess) -> None:
    files = rendered(config_with("none"))
    result = analyze_resources(pack, [repo_file(RELEASE, files[RELEASE])])
    [message] = violated(result, "release-workflow-signs")
    assert "cosign sign" in message and "SBOM attestation" in message
    assert "provenance" not in message.split("Set roadbike")[0]
    assert "roadbike:signing.mode" in message


def test_release_without_provenance_violates(pack: PolicyPackProcess) -> None:
    text = rendered()[RELEASE]
    without = "\n".join(line for line in text.splitlines() if "attest-build-provenance" not in line)
    without = without.replace("      - name: Attest build provenance\n", "")
    [message] = violated(
        analyze_resources(pack, [repo_file(RELEASE, without + "\n")]), "release-workflow-signs"
    )
    assert "build provenance" in message and "cosign sign" not in message


def test_signed_releases_and_non_release_workflows_pass(pack: PolicyPackProcess) -> None:
    files = rendered(config_with("none"))
    result = analyze_resources(pack, [repo_file(CI_WORKFLOW, files[CI_WORKFLOW])])
    assert violated(result, "release-workflow-signs") == []
    for mode in ("keypair", "keyless"):
        signed = rendered(config_with(mode))[RELEASE]
        assert violated(analyze_resources(pack, [repo_file(RELEASE, signed)]), "release-workflow-signs") == []


# --- release-workflow-multi-arch -------------------------------------------------------------------


def test_single_platform_release_violates(pack: PolicyPackProcess) -> None:
    text = rendered(config_with(platforms=["linux/amd64"]))[RELEASE]
    [message] = violated(analyze_resources(pack, [repo_file(RELEASE, text)]), "release-workflow-multi-arch")
    assert "linux/amd64 only" in message and "add linux/arm64" in message


def test_emulated_release_violates(pack: PolicyPackProcess) -> None:
    text = rendered()[RELEASE].replace(
        "      - name: Set up Buildx\n",
        "      - name: QEMU\n        uses: docker/setup-qemu-action@"
        + "c" * 40
        + "\n      - name: Set up Buildx\n",
        1,
    )
    [message] = violated(analyze_resources(pack, [repo_file(RELEASE, text)]), "release-workflow-multi-arch")
    assert "docker/setup-qemu-action" in message and "native runner" in message


def test_multi_arch_release_passes(pack: PolicyPackProcess) -> None:
    text = rendered()[RELEASE]
    assert violated(analyze_resources(pack, [repo_file(RELEASE, text)]), "release-workflow-multi-arch") == []


# --- repository-file-no-plaintext-secret -----------------------------------------------------------

# Built at run time so that no scanner mistakes this test for a leak.
FAKE_KEY = "-----BEGIN " + "EC PRIVATE KEY-----\nMHcCAQEEIA==\n-----END " + "EC PRIVATE KEY-----\n"
FAKE_TOKEN = "gh" + "p_" + "A1b2C3d4" * 5
FAKE_URL = "https://deploy:" + "hunter22" + "@registry.acme.internal/v2/"


def test_plaintext_secrets_in_files_violate(pack: PolicyPackProcess) -> None:
    files = [
        repo_file("deploy/key.pem", FAKE_KEY),
        repo_file(".github/workflows/leak.yml", f"env:\n  TOKEN: {FAKE_TOKEN}\n"),
        repo_file("README.md", f"pull from {FAKE_URL}\n"),
    ]
    messages = violated(analyze_resources(pack, files), "repository-file-no-plaintext-secret")
    assert len(messages) == 3
    assert any("a private key" in m for m in messages)
    assert any("a GitHub token" in m for m in messages)
    assert any("a password in a URL" in m for m in messages)
    assert not any(FAKE_TOKEN in m for m in messages), "the message names the kind, never the value"


# One of each alternative of each PLAINTEXT_SECRETS pattern, built at run time like the ones above.
EVERY_KIND_OF_SECRET = [
    *("-----BEGIN " + f"{kind}PRIVATE KEY-----" for kind in ("", "RSA ", "EC ", "OPENSSH ", "ENCRYPTED ")),
    *("gh" + f"{letter}_" + "A1b2C3d4" * 5 for letter in "pousr"),
    "github" + "_pat_" + "A1b2_C3d4" * 5,
    *(prefix + "B" * 16 for prefix in ("AK" + "IA", "AS" + "IA")),
    *("xo" + f"x{letter}-" + "12345-abcde" for letter in "abposr"),
    "AI" + "za" + "Sy-A1b2C3d4_" * 2 + "A1b2C3d4e5f",
    *(f"{scheme}://deploy:" + "hunter22@db.internal/" for scheme in ("http", "https", "ftp", "postgres")),
    *(f"{scheme}://deploy:" + "hunter22@db.internal/" for scheme in ("postgresql", "mysql", "redis", "amqp")),
    *(f"{scheme}://deploy:" + "hunter22@db.internal/" for scheme in ("amqps", "mongodb", "mongodb+srv")),
]


@pytest.mark.parametrize("secret", EVERY_KIND_OF_SECRET)
def test_the_secret_hint_rules_out_no_secret(secret: str) -> None:
    """`plaintext_secret_kinds` searches the patterns only where PLAINTEXT_SECRET_HINT matches: it must
    find in a text exactly what searching every pattern does."""
    for text in (secret, f"value: {secret}\n", f"a {secret} b"):
        everything = [kind for kind, pattern in PLAINTEXT_SECRETS if pattern.search(text)]
        assert everything, f"{text!r} should be a secret to the patterns"
        assert plaintext_secret_kinds(text) == everything


def test_rendered_files_name_secrets_without_holding_them(pack: PolicyPackProcess) -> None:
    files = rendered()
    assert "COSIGN_PRIVATE_KEY" in files[RELEASE]
    result = analyze_resources(
        pack, [*files_of(files), repo_file(DEPENDABOT, files[DEPENDABOT], "orders-api")]
    )
    assert violated(result, "repository-file-no-plaintext-secret") == []


# --- webhook-secret-and-tls ------------------------------------------------------------------------


def webhook(configuration: dict[str, Any]) -> RecordedResource:
    return resource(
        WEBHOOK, "hook", {"repository": "go-http-server", "events": ["push"], "configuration": configuration}
    )


def test_signed_tls_webhook_passes(pack: PolicyPackProcess) -> None:
    secret = {SECRET_SIG_KEY: SECRET_SIG, "value": "s" * 48}
    good = {
        "url": "https://hooks.acme.internal/github",
        "contentType": "json",
        "insecureSsl": False,
        "secret": secret,
    }
    assert violated(analyze_resources(pack, [webhook(good)]), "webhook-secret-and-tls") == []


def test_a_secret_unknown_during_preview_still_gates_the_rest_of_the_webhook(pack: PolicyPackProcess) -> None:
    """A first preview does not know the generated secret: the policy decides on the rest, and runs."""
    secret = {SECRET_SIG_KEY: SECRET_SIG, "value": UNKNOWN}
    known = {"url": "https://hooks.acme.internal/github", "insecureSsl": False, "secret": secret}
    result = analyze_resources(pack, [webhook(known)])
    assert violated(result, "webhook-secret-and-tls") == []
    plain = {"url": "http://hooks.acme.internal/github", "insecureSsl": False, "secret": secret}
    [message] = violated(analyze_resources(pack, [webhook(plain)]), "webhook-secret-and-tls")
    assert "not an https:// URL" in message


def test_unsigned_or_unverified_webhooks_violate(pack: PolicyPackProcess) -> None:
    messages = violated(
        analyze_resources(pack, [webhook({"url": "http://hooks.acme.internal/github", "insecureSsl": True})]),
        "webhook-secret-and-tls",
    )
    assert len(messages) == 3
    assert any("has no secret" in m for m in messages)
    assert any("insecureSsl false" in m for m in messages)
    assert any("not an https:// URL" in m for m in messages)


# --- prod-environment-reviewers --------------------------------------------------------------------


def environment(name: str, reviewers: list[dict[str, Any]] | None) -> RecordedResource:
    inputs: dict[str, Any] = {"repository": "go-http-server", "environment": name}
    if reviewers is not None:
        inputs["reviewers"] = reviewers
    return resource(ENVIRONMENT, f"env-{name}-{len(reviewers or [])}", inputs)


def test_prod_with_reviewers_and_other_tiers_pass(pack: PolicyPackProcess) -> None:
    resources = [
        environment("prod", [{"users": [4242001]}]),
        environment("staging", None),
    ]
    assert violated(analyze_resources(pack, resources), "prod-environment-reviewers") == []
    teams = [environment("prod", [{"teams": [77]}])]
    assert violated(analyze_resources(pack, teams), "prod-environment-reviewers") == []


def test_prod_without_reviewers_violates(pack: PolicyPackProcess) -> None:
    for reviewers in (None, [{"users": [], "teams": []}]):
        [message] = violated(
            analyze_resources(pack, [environment("prod", reviewers)]), "prod-environment-reviewers"
        )
        assert "roadbike:github.prodReviewers" in message


# --- default branch: CI checks and review ----------------------------------------------------------


def ruleset(checks: list[str] | None, strict: bool = True, approvals: int | None = 1) -> RecordedResource:
    rules: dict[str, Any] = {"deletion": True, "nonFastForward": True}
    if checks is not None:
        rules["requiredStatusChecks"] = {
            "requiredChecks": [{"context": c} for c in checks],
            "strictRequiredStatusChecksPolicy": strict,
        }
    if approvals is not None:
        rules["pullRequest"] = {"requiredApprovingReviewCount": approvals}
    return resource(
        RULESET,
        "go-http-server-default-branch",
        {
            "name": "default-branch",
            "repository": "go-http-server",
            "target": "branch",
            "enforcement": "active",
            "conditions": {"refName": {"includes": ["~DEFAULT_BRANCH"], "excludes": []}},
            "rules": rules,
        },
    )


def repository() -> RecordedResource:
    return resource(
        REPOSITORY, "go-http-server-repository", {"name": "go-http-server", "vulnerabilityAlerts": True}
    )


def ci_file() -> RecordedResource:
    return repo_file(CI_WORKFLOW, rendered()[CI_WORKFLOW])


def test_ruleset_requiring_every_ci_job_passes(pack: PolicyPackProcess) -> None:
    result = analyze_resources(pack, [repository(), ci_file(), ruleset(ci_required_checks())])
    assert violated(result, "default-branch-requires-ci-checks") == []
    assert violated(result, "default-branch-requires-review") == []
    assert violated(result, "default-branch-protected") == []


def test_ruleset_missing_a_ci_job_violates(pack: PolicyPackProcess) -> None:
    checks = [c for c in ci_required_checks() if c != "vulncheck"]
    [message] = violated(
        analyze_resources(pack, [repository(), ci_file(), ruleset(checks)]),
        "default-branch-requires-ci-checks",
    )
    assert "vulncheck" in message and "lint" not in message.split("of .github")[0]


def test_checks_that_need_not_be_up_to_date_violate(pack: PolicyPackProcess) -> None:
    result = analyze_resources(pack, [repository(), ci_file(), ruleset(ci_required_checks(), strict=False)])
    [message] = violated(result, "default-branch-requires-ci-checks")
    assert "strict (up-to-date)" in message


def test_default_branch_without_approval_violates(pack: PolicyPackProcess) -> None:
    for approvals in (None, 0):
        result = analyze_resources(
            pack, [repository(), ci_file(), ruleset(ci_required_checks(), approvals=approvals)]
        )
        [message] = violated(result, "default-branch-requires-review")
        assert "'go-http-server'" in message and "required_approving_review_count >= 1" in message


# --- stacks that own their repositories and stacks that do not ------------------------------------

REPOSITORY_POLICIES = (
    "repository-vulnerability-alerts",
    "default-branch-protected",
    "default-branch-requires-review",
    "default-branch-requires-ci-checks",
)


@pytest.fixture(scope="module")
def stack_runs() -> dict[str, ProgramRun]:
    return {stack: run_raw(stack_raw(stack), stack=stack) for stack in STACKS}


def test_stacks_that_do_not_own_their_repositories_pass(
    pack: PolicyPackProcess, stack_runs: dict[str, ProgramRun]
) -> None:
    for stack in ("staging", "prod"):
        resources = stack_runs[stack].resources
        types = {r.type for r in resources}
        assert REPOSITORY not in types and RULESET not in types, stack
        files = [r.inputs["file"] for r in resources if r.type == FILE]
        assert files and set(files) == {f".github/workflows/release-{stack}.yml"}, stack
        result = analyze_resources(pack, resources)
        assert [(v.policy, v.detail) for v in result.violations] == [], stack


def test_an_owning_stack_without_its_repository_settings_violates(
    pack: PolicyPackProcess, stack_runs: dict[str, ProgramRun]
) -> None:
    resources = stack_runs["dev"].resources
    repositories = [r for r in resources if r.type == REPOSITORY]
    assert len(repositories) == 2
    complete = analyze_resources(pack, resources)
    assert [(v.policy, v.detail) for v in complete.violations] == []
    bare = [
        resource(REPOSITORY, r.name, {**r.inputs, "vulnerabilityAlerts": False})
        if r.type == REPOSITORY
        else r
        for r in resources
        if r.type != RULESET
    ]
    result = analyze_resources(pack, bare)
    for policy in REPOSITORY_POLICIES:
        messages = violated(result, policy)
        assert len(messages) == len(repositories), policy
        for name in ("'go-http-server'", "'orders-api'"):
            assert any(name in m for m in messages), (policy, name)
        assert not any("ownsRepositories" in m for m in messages), "this stack owns them"


def test_a_pull_request_workflow_from_a_stack_that_does_not_own_the_repository_violates(
    pack: PolicyPackProcess, stack_runs: dict[str, ProgramRun]
) -> None:
    staging = stack_runs["staging"].resources
    [message] = violated(analyze_resources(pack, [*staging, ci_file()]), "default-branch-requires-ci-checks")
    assert "'go-http-server'" in message and "roadbike:github.ownsRepositories: true" in message
    assert "lint, test, vulncheck, build" in message


@pytest.mark.parametrize("stack", STACKS)
def test_every_tier_release_workflow_is_recognised_as_a_release(pack: PolicyPackProcess, stack: str) -> None:
    raw = stack_raw(stack)
    signed = parse(raw)
    raw["signing"] = {"mode": "none"}
    unsigned = parse(raw)
    path = release_workflow_path(signed)
    assert path == f".github/workflows/release-{stack}.yml"
    bad = repo_file(path, render_files(unsigned, unsigned.services[0])[path])
    [message] = violated(analyze_resources(pack, [bad]), "release-workflow-signs")
    assert f"go-http-server:{path}" in message
    good = repo_file(path, render_files(signed, signed.services[0])[path])
    assert violated(analyze_resources(pack, [good]), "release-workflow-signs") == []


# --- repository settings and the default branch ruleset ---------------------------------------------


def test_vulnerability_alerts_on_passes(pack: PolicyPackProcess) -> None:
    result = analyze_resources(
        pack, [resource(GITHUB_REPOSITORY, "svc", repo(True)), resource(RULESET, "r", branch_ruleset())]
    )
    assert violated(result, "repository-vulnerability-alerts") == []
    assert violated(result, "default-branch-protected") == []


def test_vulnerability_alerts_off_violates(pack: PolicyPackProcess) -> None:
    result = analyze_resources(
        pack, [resource(GITHUB_REPOSITORY, "svc", repo(False)), resource(RULESET, "r", branch_ruleset())]
    )
    [message] = violated(result, "repository-vulnerability-alerts")
    assert "'svc'" in message


def test_default_branch_without_ruleset_violates(pack: PolicyPackProcess) -> None:
    result = analyze_resources(pack, [resource(GITHUB_REPOSITORY, "svc", repo(True))])
    [message] = violated(result, "default-branch-protected")
    assert "force pushes or deletion" in message


def test_ruleset_allowing_force_push_violates(pack: PolicyPackProcess) -> None:
    resources = [
        resource(GITHUB_REPOSITORY, "svc", repo(True)),
        resource(RULESET, "r", branch_ruleset(non_fast_forward=False)),
    ]
    assert violated(analyze_resources(pack, resources), "default-branch-protected")


def test_ruleset_in_evaluate_mode_violates(pack: PolicyPackProcess) -> None:
    resources = [
        resource(GITHUB_REPOSITORY, "svc", repo(True)),
        resource(RULESET, "r", branch_ruleset(enforcement="evaluate")),
    ]
    assert violated(analyze_resources(pack, resources), "default-branch-protected")
