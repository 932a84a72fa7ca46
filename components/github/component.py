"""GitHubPipeline: what a service repository gets from roadbike, wrapped in pulumi-github resources.

The stack that owns the repository (`roadbike:github.ownsRepositories`) makes what the repository has
once: the CI and Dependabot files, the default branch ruleset that requires the CI jobs and the signed
delivery webhook. Every stack makes its own tier: its environment (release tags only; reviewers in
prod) with the variables and secrets the release workflow reads, and its release workflow
`release-<tier>.yml`. Every value comes from the pure renderers in `components.workflows` and
`components.github_repo`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_github as github
import pulumi_random as random

from components.config import Service, StackConfig
from components.github.ci_workflow import CI_WORKFLOW, ci_required_checks
from components.github.delivery_report import SECRET_PUSHGATEWAY_PASSWORD, VAR_PUSHGATEWAY_USERNAME
from components.github.dependabot import DEPENDABOT
from components.github.files import render_files
from components.github.release_workflow import release_workflow_path
from components.github.repository import (
    default_branch_ruleset_args,
    deployment_policy_args,
    environment_args,
    webhook_args,
)
from components.github.steps import SECRET_REGISTRY_PASSWORD, VAR_REGISTRY_USERNAME
from components.naming import ServiceNames, release_environment, service_names
from components.secret_output import secret

WEBHOOK_SECRET_LENGTH = 48


def file_resource_suffix(config: StackConfig, path: str) -> str:
    """e.g. `ci-workflow`, or `release-workflow-prod` for the tier's release workflow."""
    suffixes = {
        CI_WORKFLOW: "ci-workflow",
        DEPENDABOT: "dependabot",
        release_workflow_path(config): f"release-workflow-{release_environment(config)}",
    }
    return suffixes[path]


@dataclass(frozen=True)
class RegistryCredentials:
    """What the release jobs log in to the registry with (the registry component's outputs)."""

    username: pulumi.Input[str]
    password: pulumi.Input[str]


class GitHubPipeline(pulumi.ComponentResource):
    """The generated pipeline and the security settings of one service repository.

    `repository`: the Repository when this stack creates it; None when it only names it (a stack that
    does not own the repository deploys after the one that does, so it exists).
    """

    def __init__(
        self,
        name: str,
        config: StackConfig,
        service: Service,
        repository: github.Repository | None,
        registry_credentials: RegistryCredentials | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("roadbike:github:GitHubPipeline", name, None, opts)
        self.names: ServiceNames = service_names(config, service)
        created = [repository] if repository is not None else []
        on_repository = pulumi.ResourceOptions(parent=self, depends_on=created)

        self.files = {
            path: github.RepositoryFile(
                self.names.resource(file_resource_suffix(config, path)),
                repository=service.repository,
                file=path,
                content=content,
                commit_message=f"roadbike: regenerate {path}",
                overwrite_on_create=True,
                opts=on_repository,
            )
            for path, content in render_files(config, service).items()
        }
        owns = config.github.owns_repositories
        self.default_branch_ruleset: github.RepositoryRuleset | None = None
        if owns:
            # Created after the workflows exist, so that the checks it requires can ever report.
            self.default_branch_ruleset = github.RepositoryRuleset(
                self.names.resource("default-branch"),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*created, *self.files.values()]),
                **default_branch_ruleset_args(config, service, ci_required_checks()),
            )
        self.environment = self._environment(config, service, on_repository, registry_credentials)
        # The receiver checks X-Hub-Signature-256 with it; a secret output, None without a webhook.
        self.webhook_secret: pulumi.Output[str] | None = None
        self.webhook = self._webhook(config, service, on_repository) if owns else None

        self.outputs: dict[str, Any] = {
            "files": sorted(self.files),
            "requiredChecks": ci_required_checks() if owns else [],
            "environment": release_environment(config),
        }
        self.register_outputs({**self.outputs, "webhookSecret": self.webhook_secret})

    def _environment(
        self,
        config: StackConfig,
        service: Service,
        on_repository: pulumi.ResourceOptions,
        registry_credentials: RegistryCredentials | None,
    ) -> github.RepositoryEnvironment:
        tier = release_environment(config)
        environment = github.RepositoryEnvironment(
            self.names.resource(f"environment-{tier}"),
            opts=on_repository,
            **environment_args(config, service),
        )
        in_environment = pulumi.ResourceOptions(parent=self, depends_on=[environment])
        github.RepositoryEnvironmentDeploymentPolicy(
            self.names.resource(f"environment-{tier}-release-tags"),
            opts=in_environment,
            **deployment_policy_args(config, service),
        )
        if registry_credentials is not None:
            self._credentials(
                service,
                tier,
                in_environment,
                (VAR_REGISTRY_USERNAME, registry_credentials.username),
                (SECRET_REGISTRY_PASSWORD, secret(registry_credentials.password)),
            )
        self._pushgateway_credentials(config, service, tier, in_environment)
        return environment

    def _pushgateway_credentials(
        self, config: StackConfig, service: Service, tier: str, in_environment: pulumi.ResourceOptions
    ) -> None:
        """What the release's report logs in to the Pushgateway with (delivery health, basic auth)."""
        pushgateway = config.delivery.pushgateway if config.delivery else None
        if pushgateway is None or pushgateway.username is None or pushgateway.password is None:
            return
        self._credentials(
            service,
            tier,
            in_environment,
            (VAR_PUSHGATEWAY_USERNAME, pushgateway.username),
            (SECRET_PUSHGATEWAY_PASSWORD, secret(pushgateway.password.get_secret_value())),
        )

    def _credentials(
        self,
        service: Service,
        tier: str,
        in_environment: pulumi.ResourceOptions,
        username: tuple[str, pulumi.Input[str]],
        password: tuple[str, Any],
    ) -> None:
        """A login of the tier's environment: the username as an Actions variable, the password as a
        secret (names and values as given)."""
        github.ActionsEnvironmentVariable(
            self._environment_child(tier, username[0]),
            repository=service.repository,
            environment=tier,
            variable_name=username[0],
            value=username[1],
            opts=in_environment,
        )
        github.ActionsEnvironmentSecret(
            self._environment_child(tier, password[0]),
            repository=service.repository,
            environment=tier,
            secret_name=password[0],
            value=password[1],
            opts=in_environment,
        )

    def _environment_child(self, tier: str, name: str) -> str:
        """e.g. `go-http-server-environment-prod-registry-password` for the secret REGISTRY_PASSWORD."""
        return self.names.resource(f"environment-{tier}-{name.lower().replace('_', '-')}")

    def _webhook(
        self, config: StackConfig, service: Service, on_repository: pulumi.ResourceOptions
    ) -> github.RepositoryWebhook | None:
        args = webhook_args(config, service)
        if args is None:
            return None
        password = random.RandomPassword(
            self.names.resource("webhook-secret"),
            length=WEBHOOK_SECRET_LENGTH,
            special=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.webhook_secret = secret(password.result)
        settings = args["configuration"]
        configuration = github.RepositoryWebhookConfigurationArgs(
            url=settings["url"],
            content_type=settings["content_type"],
            insecure_ssl=settings["insecure_ssl"],
            secret=self.webhook_secret,
        )
        return github.RepositoryWebhook(
            self.names.resource("webhook"),
            repository=args["repository"],
            events=args["events"],
            active=args["active"],
            configuration=configuration,
            opts=on_repository,
        )
