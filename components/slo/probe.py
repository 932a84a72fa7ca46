"""The SLI probe `roadbike verify` runs against a service: its URL, load and thresholds from the SLOs."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from components.config import Service
from components.slo.burn_rates import objective_ratio


def probe_outputs(service: Service) -> dict[str, Any] | None:
    """The `probe` entry of the service's stack outputs (for `roadbike verify`), thresholds from the SLOs.

    p95 latency: the strictest latency SLI threshold; success ratio: the strictest ratio SLO objective;
    error ratio: what the success ratio leaves, unless the config names it.
    """
    probe = service.probe
    if probe is None:
        return None
    latency = probe.latency_threshold_seconds or min(
        s.sli.threshold_seconds for s in service.slos if s.sli.type == "latency" and s.sli.threshold_seconds
    )
    success = probe.success_ratio or float(
        max(objective_ratio(s) for s in service.slos if s.sli.type == "ratio")
    )
    error = probe.error_ratio if probe.error_ratio is not None else float(Decimal(1) - Decimal(str(success)))
    return {
        "url": probe.url,
        "requests": probe.requests,
        "concurrency": probe.concurrency,
        "latencyThresholdSeconds": latency,
        "successRatio": success,
        "errorRatio": error,
    }
