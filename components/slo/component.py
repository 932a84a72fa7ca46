"""SloAlerts (per service) and SloRouting (per stack): the SLO renderers' objects as Kubernetes resources.

Per service: a ServiceMonitor, and for a service with SLOs its PrometheusRule (recording rules and
burn-rate alerts), the Argo Rollouts AnalysisTemplate of its SLI gate and its Grafana dashboard ConfigMap. Per stack: the Alertmanager
routing as an `AlertmanagerConfig` in the stack's namespace, which the prometheus-operator merges into
the cluster's Alertmanager and scopes to alerts of that namespace.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.config import Service, StackConfig
from components.kubernetes.component import custom_resource
from components.slo.alertmanager import alertmanager_config_resource
from components.slo.analysis import analysis_template
from components.slo.dashboard import dashboard_config_map
from components.slo.rules import prometheus_rule, slo_outputs
from components.slo.service_monitor import service_monitor


class SloAlerts(pulumi.ComponentResource):
    """The service's ServiceMonitor, SLO PrometheusRule, SLI-gate AnalysisTemplate and dashboard."""

    def __init__(
        self,
        name: str,
        config: StackConfig,
        service: Service,
        namespace: k8s.core.v1.Namespace,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("roadbike:slo:SloAlerts", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, depends_on=[namespace])
        monitor = service_monitor(config, service)
        self.service_monitor = custom_resource(f"{name}-monitor", monitor, child)
        self.prometheus_rule: k8s.apiextensions.CustomResource | None = None
        self.analysis_template: k8s.apiextensions.CustomResource | None = None
        self.dashboard: k8s.core.v1.ConfigMap | None = None
        if service.slos:
            self.prometheus_rule = custom_resource(f"{name}-rules", prometheus_rule(config, service), child)
            self.analysis_template = custom_resource(
                f"{name}-sli-gate", analysis_template(config, service), child
            )
            dashboard = dashboard_config_map(config, service)
            self.dashboard = k8s.core.v1.ConfigMap(
                f"{name}-dashboard",
                opts=child,
                metadata=dashboard["metadata"],
                data=dashboard["data"],
            )
        self.outputs: dict[str, Any] = slo_outputs(config, service)
        self.register_outputs(self.outputs)


class SloRouting(pulumi.ComponentResource):
    """The stack's Alertmanager routing: pages and tickets to their receivers, a page inhibits tickets."""

    def __init__(
        self,
        name: str,
        config: StackConfig,
        namespace: k8s.core.v1.Namespace,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("roadbike:slo:SloRouting", name, None, opts)
        manifest = alertmanager_config_resource(config)
        self.alertmanager_config = custom_resource(
            f"{name}-alertmanager", manifest, pulumi.ResourceOptions(parent=self, depends_on=[namespace])
        )
        self.outputs: dict[str, Any] = {"alertmanagerConfig": manifest["metadata"]["name"]}
        self.register_outputs(self.outputs)
