"""The plan's plain Prometheus files of delivery health: the rule file (what promtool reads) and its
promtool unit tests, under prometheus/delivery/ (apart from the services' own files)."""

from __future__ import annotations

from components.config import StackConfig
from components.delivery.promtool_tests import RULES_FILE, TESTS_FILE, promtool_tests
from components.delivery.rules import rule_groups
from components.yaml_text import to_yaml

DIRECTORY = "prometheus/delivery"


def delivery_artifacts(config: StackConfig) -> dict[str, str]:
    if config.delivery is None:
        return {}
    return {
        f"{DIRECTORY}/{RULES_FILE}": to_yaml({"groups": rule_groups(config)}),
        f"{DIRECTORY}/{TESTS_FILE}": to_yaml(promtool_tests(config)),
    }
