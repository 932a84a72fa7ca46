"""Plan artifacts that are not resources of their own (e.g. promtool unit tests), by relative path.

Each domain adds its pure renderer here; the plan writes what this returns beside the files it takes
from the recorded resources.
"""

from __future__ import annotations

from collections.abc import Callable

from components.config import StackConfig
from components.delivery.files import delivery_artifacts
from components.slo.files import slo_artifacts

ArtifactRenderer = Callable[[StackConfig], dict[str, str]]

RENDERERS: list[ArtifactRenderer] = [slo_artifacts, delivery_artifacts]


def render_artifacts(config: StackConfig) -> dict[str, str]:
    files: dict[str, str] = {}
    for renderer in RENDERERS:
        files.update(renderer(config))
    return files
