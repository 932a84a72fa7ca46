"""GitHubPipeline under Pulumi's mock monitor, and what a real `roadbike plan` writes and refuses."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pulumi.runtime.rpc import UNKNOWN

from components.github.ci_workflow import ci_required_checks
from components.github.files import render_files
from components.github.repository import RELEASE_TAG_PATTERN, WEBHOOK_EVENTS
from roadbike.program import ProgramRun, RecordedResource, is_secret, run_program
from roadbike.stackfile import StackFile
from tests.helpers import (
    STACKS,
    by_name,
    check_jsonschema,
    of_type,
    parse,
    roadbike,
    run_raw,
    stack_raw,
    write_stack,
    zizmor,
)

PIPELINE = "roadbike:github:GitHubPipeline"
CHAIN = "roadbike:chain:DeliveryChain"
FILE = "github:index/repositoryFile:RepositoryFile"
RULESET = "github:index/repositoryRuleset:RepositoryRuleset"
REPOSITORY = "github:index/repository:Repository"
ENVIRONMENT = "github:index/repositoryEnvironment:RepositoryEnvironment"
DEPLOYMENT_POLICY = "github:index/repositoryEnvironmentDeploymentPolicy:RepositoryEnvironmentDeploymentPolicy"
VARIABLE = "github:index/actionsEnvironmentVariable:ActionsEnvironmentVariable"
SECRET = "github:index/actionsEnvironmentSecret:ActionsEnvironmentSecret"
WEBHOOK = "github:index/repositoryWebhook:RepositoryWebhook"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"


@pytest.fixture(scope="module")
def dev_run() -> ProgramRun:
    return run_raw(stack_raw("dev"), stack="dev")


@pytest.fixture(scope="module")
def prod_run() -> ProgramRun:
    return run_raw(stack_raw("prod"), stack="prod")


def children(run: ProgramRun, parent: RecordedResource, type_: str | None = None) -> list[RecordedResource]:
    return [r for r in run.resources if r.parent == parent.urn and type_ in (None, r.type)]


def test_one_pipeline_per_service_under_its_chain(dev_run: ProgramRun) -> None:
    chains = by_name(dev_run, CHAIN)
    pipelines = by_name(dev_run, PIPELINE)
    assert sorted(pipelines) == ["go-http-server-github", "orders-api-github"]
    for service in ("go-http-server", "orders-api"):
        pipeline = pipelines[f"{service}-github"]
        assert pipeline.parent == chains[service].urn
        own = sorted(r.type for r in children(dev_run, pipeline))
        assert own == sorted(
            [FILE] * 3
            + [RULESET, ENVIRONMENT, DEPLOYMENT_POLICY, RANDOM_PASSWORD, WEBHOOK]
            + [VARIABLE]  # the registry user name
            + [SECRET]  # the registry password
        )
    assert len(of_type(dev_run, RULESET)) == len(chains), "the pipeline's ruleset replaces the chain's"


def test_files_are_the_rendered_ones(dev_run: ProgramRun) -> None:
    config = parse(stack_raw("dev"))
    repository = by_name(dev_run, REPOSITORY)["orders-api-repository"]
    files = {r.inputs["file"]: r for r in of_type(dev_run, FILE) if r.inputs["repository"] == "orders-api"}
    rendered = render_files(config, config.services[1])
    assert sorted(files) == sorted(rendered)
    for path, resource in files.items():
        assert resource.inputs["content"] == rendered[path]
        assert resource.inputs["overwriteOnCreate"] is True
        assert repository.urn in resource.dependencies


def test_ruleset_requires_review_and_the_ci_jobs(dev_run: ProgramRun) -> None:
    ruleset = by_name(dev_run, RULESET)["go-http-server-default-branch"]
    rules = ruleset.inputs["rules"]
    assert rules["deletion"] is True and rules["nonFastForward"] is True
    assert rules["pullRequest"]["requiredApprovingReviewCount"] == 1
    assert rules["pullRequest"]["dismissStaleReviewsOnPush"] is True
    checks = rules["requiredStatusChecks"]
    assert [c["context"] for c in checks["requiredChecks"]] == ci_required_checks()
    assert checks["strictRequiredStatusChecksPolicy"] is True
    assert ruleset.inputs["conditions"]["refName"]["includes"] == ["~DEFAULT_BRANCH"]
    files = [r.urn for r in of_type(dev_run, FILE) if r.inputs["repository"] == "go-http-server"]
    assert set(files) <= set(ruleset.dependencies), "required checks only once the workflows exist"


def test_only_the_deploying_app_bypasses_the_ruleset(dev_run: ProgramRun) -> None:
    assert "bypassActors" not in by_name(dev_run, RULESET)["go-http-server-default-branch"].inputs
    raw = stack_raw("dev")
    raw["github"]["deployerAppId"] = 987654
    ruleset = by_name(run_raw(raw, stack="dev"), RULESET)["go-http-server-default-branch"]
    assert ruleset.inputs["bypassActors"] == [
        {"actorType": "Integration", "actorId": 987654, "bypassMode": "always"}
    ]


def test_environment_of_the_tier_takes_release_tags_only(dev_run: ProgramRun) -> None:
    environment = by_name(dev_run, ENVIRONMENT)["go-http-server-environment-dev"]
    assert environment.inputs["environment"] == "dev"
    assert environment.inputs["deploymentBranchPolicy"] == {
        "protectedBranches": False,
        "customBranchPolicies": True,
    }
    assert "reviewers" not in environment.inputs
    policy = by_name(dev_run, DEPLOYMENT_POLICY)["go-http-server-environment-dev-release-tags"]
    assert policy.inputs == {
        "repository": "go-http-server",
        "environment": "dev",
        "tagPattern": RELEASE_TAG_PATTERN,
    }
    for pipeline in of_type(dev_run, PIPELINE):
        scoped = (*children(dev_run, pipeline, VARIABLE), *children(dev_run, pipeline, SECRET))
        assert scoped and all(r.inputs["environment"] == "dev" for r in scoped)


def test_registry_credentials_of_the_platform_reach_the_environment(dev_run: ProgramRun) -> None:
    pipeline = by_name(dev_run, PIPELINE)["go-http-server-github"]
    [secret] = children(dev_run, pipeline, SECRET)
    assert secret.inputs["secretName"] == "REGISTRY_PASSWORD"
    assert secret.inputs["environment"] == "dev"
    assert is_secret(secret.inputs["value"])
    [username] = [
        r for r in children(dev_run, pipeline, VARIABLE) if r.inputs["variableName"] == "REGISTRY_USERNAME"
    ]
    assert isinstance(username.inputs["value"], str) and username.inputs["value"]


def test_prod_environment_has_reviewers(prod_run: ProgramRun) -> None:
    environment = by_name(prod_run, ENVIRONMENT)["orders-api-environment-prod"]
    assert environment.inputs["reviewers"] == [{"users": [4242001, 4242002]}]
    assert environment.inputs["preventSelfReview"] is True
    assert environment.inputs["canAdminsBypass"] is False


def test_webhook_is_signed_json_over_tls(dev_run: ProgramRun) -> None:
    webhook = by_name(dev_run, WEBHOOK)["go-http-server-webhook"]
    configuration = webhook.inputs["configuration"]
    assert configuration["url"] == stack_raw("dev")["github"]["webhookUrl"]
    assert configuration["contentType"] == "json"
    assert configuration["insecureSsl"] is False
    assert is_secret(configuration["secret"])
    assert configuration["secret"]["value"] == UNKNOWN  # generated by RandomPassword: unknown at preview
    assert webhook.inputs["events"] == list(WEBHOOK_EVENTS)
    secret = by_name(dev_run, RANDOM_PASSWORD)["go-http-server-webhook-secret"]
    assert secret.urn in webhook.dependencies
    assert secret.inputs["length"] == 48 and secret.inputs["special"] is False


def test_no_webhook_without_an_endpoint() -> None:
    raw = stack_raw("dev")
    del raw["github"]["webhookUrl"]
    run = run_raw(raw, stack="dev")
    assert of_type(run, WEBHOOK) == []
    for pipeline in of_type(run, PIPELINE):
        assert children(run, pipeline, RANDOM_PASSWORD) == []


# --- which stack owns the repository -------------------------------------------------------------


def test_each_repository_of_the_committed_stacks_has_one_owner_deployed_first() -> None:
    configs = {stack: parse(stack_raw(stack)) for stack in STACKS}
    assert [stack for stack, c in configs.items() if c.github.owns_repositories] == ["dev"]
    owned = {(configs["dev"].github.owner, s.repository) for s in configs["dev"].services}
    for stack, config in configs.items():
        assert {(config.github.owner, s.repository) for s in config.services} <= owned, stack


@pytest.mark.parametrize(
    ("stack", "secrets"),
    [
        ("staging", {"REGISTRY_PASSWORD", "COSIGN_PRIVATE_KEY", "COSIGN_PASSWORD"}),
        ("prod", {"REGISTRY_PASSWORD"}),  # keyless: no key to keep
    ],
)
def test_a_stack_that_does_not_own_the_repositories_adds_only_its_tier(stack: str, secrets: set[str]) -> None:
    raw = stack_raw(stack)
    config = parse(raw)
    run = run_raw(raw, stack=stack)
    assert config.github.owns_repositories is False
    for type_ in (REPOSITORY, RULESET, WEBHOOK):
        assert of_type(run, type_) == [], type_
    pipelines = by_name(run, PIPELINE)
    for service in config.services:
        pipeline = pipelines[f"{service.name}-github"]
        own = sorted(r.type for r in children(run, pipeline))
        assert own == sorted([FILE, ENVIRONMENT, DEPLOYMENT_POLICY, VARIABLE, SECRET])
        [file] = children(run, pipeline, FILE)
        assert file.name == f"{service.name}-release-workflow-{stack}"
        assert file.inputs["file"] == f".github/workflows/release-{stack}.yml"
        assert file.inputs["repository"] == service.repository
        assert file.inputs["content"] == render_files(config, service)[file.inputs["file"]]
        environment = by_name(run, ENVIRONMENT)[f"{service.name}-environment-{stack}"]
        assert environment.inputs["repository"] == service.repository
        assert environment.inputs["environment"] == stack
        # The repository is named, not created: nothing here waits for a Repository.
        assert file.dependencies == [] and environment.dependencies == []
        names = {
            r.inputs["secretName"]
            for r in of_type(run, SECRET)
            if r.inputs["repository"] == service.repository
        }
        assert names == secrets
        assert run.outputs["services"][service.name]["repository"] == f"acme/{service.repository}"


def test_owning_the_repositories_adds_exactly_the_repository_settings(dev_run: ProgramRun) -> None:
    raw = stack_raw("dev")
    raw["github"]["ownsRepositories"] = False
    del raw["github"]["webhookUrl"]
    tier_only = run_raw(raw, stack="dev")
    services = len(raw["services"])
    owned_types = Counter(r.type for r in dev_run.resources)
    tier_types = Counter(r.type for r in tier_only.resources)
    assert owned_types - tier_types == Counter(
        {
            REPOSITORY: services,
            RULESET: services,
            FILE: 2 * services,
            WEBHOOK: services,
            RANDOM_PASSWORD: services,
        }
    )
    assert tier_types - owned_types == Counter()
    owned = {r.urn: r for r in dev_run.resources}
    for tier_resource in tier_only.resources:
        assert tier_resource.inputs == owned[tier_resource.urn].inputs, tier_resource.urn
    assert tier_only.outputs == dev_run.outputs


def test_ownership_defaults_to_true_and_the_webhook_belongs_to_the_owner(tmp_path: Path) -> None:
    raw = stack_raw("dev")
    del raw["github"]["ownsRepositories"]
    assert parse(raw).github.owns_repositories is True
    raw = stack_raw("staging")
    raw["github"]["webhookUrl"] = "https://delivery.staging.acme.internal/github/webhook"
    result, _ = plan_with(tmp_path, raw)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "roadbike:github: webhookUrl is a repository setting" in result.stderr
    assert "Traceback" not in result.stderr


PROGRAM_WITH_CREDENTIALS = """
import pulumi
import pulumi_github as github

from components.config import load_pulumi_config
from components.github.component import GitHubPipeline, RegistryCredentials

config = load_pulumi_config()
service = config.services[0]
repository = github.Repository("repository", name=service.repository, vulnerability_alerts=True)
GitHubPipeline(
    "pipeline",
    config,
    service,
    repository,
    registry_credentials=RegistryCredentials(
        username="robot-pusher", password=pulumi.Output.secret("registry-password-value")
    ),
)
"""


def test_registry_credentials_become_the_release_environment_login(tmp_path: Path) -> None:
    (tmp_path / "__main__.py").write_text(PROGRAM_WITH_CREDENTIALS)
    stack_file = StackFile(path=Path("test.yaml"), display="test.yaml", raw=stack_raw("staging"))
    run = run_program(tmp_path, "roadbike", "test", stack_file.pulumi_config(), [])
    [secret] = of_type(run, SECRET)
    assert secret.inputs["secretName"] == "REGISTRY_PASSWORD"
    assert secret.inputs["environment"] == "staging"
    assert is_secret(secret.inputs["value"]), "secret values only as secret outputs"
    assert secret.inputs["value"]["value"] == "registry-password-value"
    variables = {r.inputs["variableName"]: r.inputs["value"] for r in of_type(run, VARIABLE)}
    assert variables["REGISTRY_USERNAME"] == "robot-pusher", "a user name is no secret: GitHub would mask it"
    [pipeline] = of_type(run, PIPELINE)
    assert all(r.parent == pipeline.urn for r in (*of_type(run, SECRET), *of_type(run, VARIABLE)))


# --- a real plan ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_planned_workflows_pass_zizmor_and_the_schemas(plans: dict, stack: str) -> None:
    out, result = plans[stack]
    assert result.returncode == 0, result.stdout + result.stderr
    config = parse(stack_raw(stack))
    repositories = sorted((out / "github").iterdir())
    assert [p.name for p in repositories] == sorted(s.repository for s in config.services)
    written = sorted(str(p.relative_to(out / "github")) for p in (out / "github").rglob("*") if p.is_file())
    assert written == sorted(
        f"{s.repository}/{path}" for s in config.services for path in render_files(config, s)
    )
    findings = zizmor(*repositories)
    assert findings.returncode == 0, findings.stdout + findings.stderr
    assert json.loads(findings.stdout) == []
    workflows = sorted((out / "github").glob("*/.github/workflows/*.yml"))
    assert {p.name for p in workflows} == (
        {"ci.yml", "release-dev.yml"} if stack == "dev" else {f"release-{stack}.yml"}
    )
    dependabot = sorted((out / "github").glob("*/.github/dependabot.yml"))
    assert len(dependabot) == (len(repositories) if config.github.owns_repositories else 0)
    for schema, files in (("vendor.github-workflows", workflows), ("vendor.dependabot", dependabot)):
        if not files:
            continue
        checked = check_jsonschema(schema, *files)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    report = json.loads((out / "policy/report.json").read_text())
    assert {p["name"] for p in report["policies"]} >= {
        "workflow-actions-pinned",
        "release-workflow-signs",
        "default-branch-requires-ci-checks",
        "prod-environment-reviewers",
    }


def webhook_secret_values(run: ProgramRun) -> list[str]:
    return [r.inputs["configuration"]["secret"]["value"] for r in of_type(run, WEBHOOK)]


def test_webhook_secret_never_in_clear_in_the_plan(plans: dict, dev_run: ProgramRun) -> None:
    out, _ = plans["dev"]
    assert webhook_secret_values(dev_run) == [UNKNOWN, UNKNOWN]  # a first preview has no value yet
    plan = json.loads((out / "plan.json").read_text())
    webhooks = [r for r in plan["resources"] if r["type"] == WEBHOOK]
    assert [w["inputs"]["configuration"]["secret"] for w in webhooks] == ["[secret]", "[secret]"]


def plan_with(tmp_path: Path, raw: dict[str, Any]) -> tuple[subprocess.CompletedProcess[str], dict]:
    stack_file = write_stack(tmp_path / "Pulumi.changed.yaml", raw)
    out = tmp_path / "plan"
    result = roadbike("plan", "--stack", "changed", "--config-file", str(stack_file), "--out", str(out))
    report = (
        json.loads((out / "policy/report.json").read_text()) if (out / "policy/report.json").exists() else {}
    )
    return result, report


def test_signing_off_is_refused_by_the_plan(tmp_path: Path) -> None:
    raw = stack_raw("dev")
    raw["signing"] = {"mode": "none"}
    result, report = plan_with(tmp_path, raw)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[mandatory]  release-workflow-signs" in result.stdout
    violations = [v for v in report["violations"] if v["policy"] == "release-workflow-signs"]
    assert len(violations) == len(raw["services"])
    assert all("cosign sign" in v["message"] for v in violations)


def test_one_platform_is_refused_by_the_plan(tmp_path: Path) -> None:
    raw = stack_raw("staging")
    raw["services"][1]["platforms"] = ["linux/amd64"]
    result, report = plan_with(tmp_path, raw)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[mandatory]  release-workflow-multi-arch" in result.stdout
    violations = [v for v in report["violations"] if v["policy"] == "release-workflow-multi-arch"]
    assert len(violations) == 1 and "orders-api" in violations[0]["message"]


def test_prod_without_reviewers_is_refused_by_the_plan(tmp_path: Path) -> None:
    raw = stack_raw("prod")
    del raw["github"]["prodReviewers"]
    result, report = plan_with(tmp_path, raw)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[mandatory]  prod-environment-reviewers" in result.stdout
    violations = [v for v in report["violations"] if v["policy"] == "prod-environment-reviewers"]
    assert len(violations) == len(raw["services"])


def test_an_http_webhook_is_refused_by_the_config(tmp_path: Path) -> None:
    raw = stack_raw("dev")
    raw["github"]["webhookUrl"] = "http://delivery.dev.acme.internal/github/webhook"
    result, _ = plan_with(tmp_path, raw)
    assert result.returncode == 2
    assert "roadbike:github.webhookUrl" in result.stderr and "https://" in result.stderr
