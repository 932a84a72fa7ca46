"""The plan's plain Prometheus files: per service its rule file and promtool tests (those over hours, and
those over days), per stack alertmanager.yml."""

from __future__ import annotations

from components.config import StackConfig
from components.slo.alertmanager import alertmanager_config
from components.slo.promtool_tests import (
    long_promtool_tests,
    long_tests_file_name,
    promtool_tests,
    tests_file_name,
)
from components.slo.rules import rule_groups, rules_file_name
from components.yaml_text import to_yaml


def slo_artifacts(config: StackConfig) -> dict[str, str]:
    """prometheus/<service>.rules.yml, .test.yml and .long.test.yml for each service with SLOs, and
    alertmanager.yml."""
    files = {"prometheus/alertmanager.yml": to_yaml(alertmanager_config(config))}
    for service in config.services:
        if not service.slos:
            continue
        files[f"prometheus/{rules_file_name(service)}"] = to_yaml({"groups": rule_groups(config, service)})
        files[f"prometheus/{tests_file_name(service)}"] = to_yaml(promtool_tests(config, service))
        files[f"prometheus/{long_tests_file_name(service)}"] = to_yaml(long_promtool_tests(config, service))
    return files
