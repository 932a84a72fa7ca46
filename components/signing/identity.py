"""The keyless (Sigstore OIDC) identity a service's release workflow signs with, and the public instances."""

from __future__ import annotations

from components.config import Service, StackConfig
from components.github.release_workflow import release_workflow_path

GITHUB_OIDC_ISSUER = "https://token.actions.githubusercontent.com"


FULCIO_URL = "https://fulcio.sigstore.dev"


REKOR_URL = "https://rekor.sigstore.dev"


def _regexp_literal(text: str) -> str:
    """GitHub owner, repository and file names hold only [A-Za-z0-9._-]: '.' is the one to escape."""
    return text.replace(".", r"\.")


def release_workflow_identity(config: StackConfig, service: Service) -> str:
    """The certificate identity (a regexp) of the stack tier's release workflow on a `v<SemVer>` tag.

    Fulcio puts the workflow ref in the certificate, e.g.
    `https://github.com/acme/orders-api/.github/workflows/release-prod.yml@refs/tags/v2.0.0`: only the
    tier's own workflow, which signs in the tier's environment, can sign for the tier.
    """
    workflow = _regexp_literal(f"{config.github.owner}/{service.repository}/{release_workflow_path(config)}")
    return rf"^https://github\.com/{workflow}@refs/tags/v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$"


def keyless_identity(config: StackConfig, service: Service) -> dict[str, str]:
    """The OIDC issuer and the certificate identity (a regexp) of the service's release workflow."""
    return {"issuer": GITHUB_OIDC_ISSUER, "identity": release_workflow_identity(config, service)}
