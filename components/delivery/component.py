"""DeliveryHealth (one per stack with `roadbike:delivery`): the delivery measures as a PrometheusRule,
each service's yellow and red tickets as its own PrometheusRule, and the delivery dashboard as a
ConfigMap, in the stack's namespace."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.config import StackConfig
from components.delivery.dashboard import dashboard_config_map
from components.delivery.rules import alerts_prometheus_rule, prometheus_rule, rule_groups
from components.kubernetes.component import custom_resource


class DeliveryHealth(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        namespace: k8s.core.v1.Namespace,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        delivery = config.delivery
        if delivery is None:
            raise ValueError("DeliveryHealth needs the stack's roadbike:delivery section")
        # what the policy pack reads: delivery health is configured, for which environment
        props = {"environment": config.environment, "pushgatewayUrl": delivery.pushgateway.url}
        super().__init__("roadbike:delivery:DeliveryHealth", name, props, opts)
        child = pulumi.ResourceOptions(parent=self, depends_on=[namespace])
        self.prometheus_rule = custom_resource(f"{name}-rules", prometheus_rule(config), child)
        # each service's tickets in its own object: adding a service only creates
        self.alert_rules = {
            service.name: custom_resource(
                f"{service.name}-delivery-alerts", alerts_prometheus_rule(config, service), child
            )
            for service in config.services
        }
        dashboard = dashboard_config_map(config)
        self.dashboard = k8s.core.v1.ConfigMap(
            f"{name}-dashboard", opts=child, metadata=dashboard["metadata"], data=dashboard["data"]
        )
        # the engine hands stack policies a component's outputs, not its inputs: the policy pack reads
        # the environment here
        self.outputs: dict[str, Any] = {
            "environment": config.environment,
            "pushgateway": delivery.pushgateway.url,
            "ruleGroups": [g["name"] for g in rule_groups(config)],
            "dashboard": dashboard["metadata"]["name"],
        }
        self.register_outputs(self.outputs)
