"""The ServiceMonitor through which Prometheus scrapes a service's SLI metrics."""

from __future__ import annotations

from typing import Any

from components.config import Service, StackConfig
from components.naming import service_names
from components.slo.analysis import POD_TEMPLATE_HASH
from components.slo.rules import object_metadata

SCRAPE_INTERVAL = "30s"


def service_monitor(config: StackConfig, service: Service) -> dict[str, Any]:
    names = service_names(config, service)
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": object_metadata(config, names, names.service, "monitoring"),
        "spec": {
            "selector": {"matchLabels": dict(names.selector)},
            "namespaceSelector": {"matchNames": [names.namespace]},
            "jobLabel": names.job_label,
            "podTargetLabels": [POD_TEMPLATE_HASH],
            "endpoints": [
                {
                    "port": service.metrics_port,
                    "path": service.metrics_path,
                    "interval": SCRAPE_INTERVAL,
                    "scheme": "http",
                }
            ],
        },
    }
