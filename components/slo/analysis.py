"""The Argo Rollouts AnalysisTemplate of a service's SLI gate: each SLO's good-request ratio on the canary."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from components.config import Service, Slo, StackConfig
from components.naming import ServiceNames, service_names
from components.slo.burn_rates import decimal_text, objective_ratio
from components.slo.rules import object_metadata, sli_queries
from components.slo.selectors import Matcher, Selector

DEFAULT_PROMETHEUS_ADDRESS = "http://prometheus-operated.monitoring.svc:9090"


# Argo Rollouts labels each pod with the hash of its template; the ServiceMonitor keeps it on the series
# so that the SLI gate can look at the canary's pods only.
POD_TEMPLATE_HASH = "rollouts-pod-template-hash"


def _gate_conditions(comparison: str, failing: str) -> dict[str, str]:
    """NaN-safe: no traffic (empty result or NaN) is neither success nor failure but inconclusive."""
    measured = "len(result) > 0 && !isNaN(result[0])"
    return {
        "successCondition": f"{measured} && result[0] {comparison}",
        "failureCondition": f"{measured} && result[0] {failing}",
    }


def _canary_scope(selector: Selector) -> Selector:
    label = POD_TEMPLATE_HASH.replace("-", "_")
    return replace(
        selector, matchers=(*selector.matchers, Matcher(label, "=~", "{{args.pod-template-hash}}"))
    )


def gate_metric(names: ServiceNames, slo: Slo) -> dict[str, Any]:
    queries = sli_queries(names, slo)
    canary = replace(
        queries,
        total=_canary_scope(queries.total),
        bad=_canary_scope(queries.bad) if queries.bad else None,
        good=_canary_scope(queries.good) if queries.good else None,
    )
    objective = decimal_text(objective_ratio(slo))
    # The share of good (or fast) requests must meet the objective: for latency the same fraction of
    # requests within the threshold's bucket as the SLI, whatever the bucket's spelling, never a quantile
    # interpolated across pods whose buckets differ.
    query = f"1 - (\n{canary.error_ratio('5m')}\n)"
    conditions = _gate_conditions(f">= {objective}", f"< {objective}")
    return {
        "name": slo.name,
        "interval": "1m",
        "count": 5,
        "failureLimit": 1,
        **conditions,
        "provider": {"prometheus": {"address": "{{args.prometheus-address}}", "query": query, "timeout": 30}},
    }


def analysis_template(config: StackConfig, service: Service) -> dict[str, Any]:
    """The post-deploy SLI gate: one metric per SLO, for canary steps to reference."""
    names = service_names(config, service)
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": object_metadata(config, names, names.resource("sli-gate"), "sli-gate"),
        "spec": {
            "args": [
                {"name": "prometheus-address", "value": config.prometheus.url or DEFAULT_PROMETHEUS_ADDRESS},
                # `podTemplateHashValue: Latest` from the Rollout narrows the gate to the canary's pods.
                {"name": "pod-template-hash", "value": ".*"},
            ],
            "metrics": [gate_metric(names, slo) for slo in service.slos],
        },
    }
