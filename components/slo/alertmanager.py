"""The stack's Alertmanager routing of SLO alerts: page and ticket receivers, page inhibits ticket;
as a plain alertmanager.yml (what amtool reads) and as an AlertmanagerConfig object.
"""

from __future__ import annotations

from typing import Any

from components.config import StackConfig
from components.naming import platform_labels
from components.slo.burn_rates import PAGE, TICKET
from components.slo.rules import SLO_LABELS

PAGE_RECEIVER = "slo-page"


TICKET_RECEIVER = "slo-ticket"


GROUP_BY = ["alertname", *SLO_LABELS]


ROUTES = ((PAGE_RECEIVER, PAGE, "1h"), (TICKET_RECEIVER, TICKET, "1d"))


ALERTMANAGER_CONFIG_NAME = "slo-routing"


def alertmanager_config(config: StackConfig) -> dict[str, Any]:
    """alertmanager.yml for the stack's SLO alerts: pages and tickets to their own receivers, and a
    page silences the tickets of the same SLO while it fires."""
    return {
        "route": {
            "receiver": TICKET_RECEIVER,
            "group_by": list(GROUP_BY),
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [
                {"receiver": receiver, "matchers": [f'severity="{severity}"'], "repeat_interval": repeat}
                for receiver, severity, repeat in ROUTES
            ],
        },
        "receivers": [{"name": receiver} for receiver, _, _ in ROUTES],
        "inhibit_rules": [
            {
                "source_matchers": [f'severity="{PAGE}"'],
                "target_matchers": [f'severity="{TICKET}"'],
                "equal": list(SLO_LABELS),
            }
        ],
    }


def _cr_matcher(severity: str) -> dict[str, str]:
    return {"name": "severity", "value": severity, "matchType": "="}


def alertmanager_config_resource(config: StackConfig) -> dict[str, Any]:
    """The same routing as an AlertmanagerConfig in the stack's namespace (the operator scopes it there)."""
    return {
        "apiVersion": "monitoring.coreos.com/v1alpha1",
        "kind": "AlertmanagerConfig",
        "metadata": {
            "name": ALERTMANAGER_CONFIG_NAME,
            "namespace": config.kubernetes.namespace,
            "labels": {**platform_labels(config), **config.prometheus.rule_selector_labels},
        },
        "spec": {
            "route": {
                "receiver": TICKET_RECEIVER,
                "groupBy": list(GROUP_BY),
                "groupWait": "30s",
                "groupInterval": "5m",
                "repeatInterval": "4h",
                "routes": [
                    {"receiver": receiver, "matchers": [_cr_matcher(severity)], "repeatInterval": repeat}
                    for receiver, severity, repeat in ROUTES
                ],
            },
            "receivers": [{"name": receiver} for receiver, _, _ in ROUTES],
            "inhibitRules": [
                {
                    "sourceMatch": [_cr_matcher(PAGE)],
                    "targetMatch": [_cr_matcher(TICKET)],
                    "equal": list(SLO_LABELS),
                }
            ],
        },
    }
