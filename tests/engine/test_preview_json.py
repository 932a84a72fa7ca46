"""`roadbike plan --json` held to the document of the real `pulumi preview --json` of the same stack."""

from __future__ import annotations

import json
from pathlib import Path

from tests.engine.real_engine import real_preview
from tests.engine.test_conformance import CLUSTER_SIDE, REGISTRY_PASSWORD
from tests.helpers import roadbike

# What roadbike adds: the policy violations, as the engine's own policy events.
ROADBIKE_ONLY = {"policyEvents"}


def test_the_json_has_the_real_previews_shape_and_counts(tmp_path: Path) -> None:
    preview = real_preview(
        "prod", tmp_path / "engine", None, CLUSTER_SIDE, REGISTRY_PASSWORD, streaming=False
    )
    assert preview.returncode == 0 and preview.document is not None, preview.output
    real = preview.document
    result = roadbike(
        "plan",
        "--stack",
        "prod",
        "--config-file",
        str(preview.stack_file),
        "--out",
        str(tmp_path / "o"),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    ours = json.loads(result.stdout)
    assert set(ours) - ROADBIKE_ONLY == set(real)
    assert ours["changeSummary"] == real["changeSummary"]
    assert sorted(s["urn"] for s in ours["steps"]) == sorted(
        s["urn"] for s in real["steps"] if "::default_" not in s["urn"]
    )
    assert {s["op"] for s in ours["steps"]} == {s["op"] for s in real["steps"]}
    for step in ours["steps"]:
        assert {"op", "urn", "newState", "detailedDiff"} <= set(step)
    assert {key for d in real["diagnostics"] for key in d} >= {"message", "severity"}
    assert set(ours["config"]) == set(real["config"])
    assert json.loads(ours["config"]["roadbike:registry"])["password"] == "[secret]"
    assert json.loads(real["config"]["roadbike:registry"])["password"] == "[secret]"
