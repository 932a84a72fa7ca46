"""The SLI probe: N requests to a service endpoint, C at a time, measured against the SLO thresholds."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import requests

from roadbike.stack_outputs import ProbeTarget
from roadbike.transport import Deadline, describe_error


@dataclass(frozen=True)
class ProbeSample:
    seconds: float
    status: int | None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def errored(self) -> bool:
        return self.status is None or self.status >= 500


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (what `p95` means in the SLO: 95% of the requests took at most this)."""
    if not values:
        return math.inf
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def evaluate_probe(samples: Sequence[ProbeSample], probe: ProbeTarget) -> tuple[bool, str, dict[str, Any]]:
    """Pure: the samples of one probe run against the SLO thresholds."""
    count = len(samples)
    p95 = percentile([s.seconds for s in samples], 0.95)
    success = sum(s.succeeded for s in samples) / count if count else 0.0
    errors = sum(s.errored for s in samples) / count if count else 1.0
    checks = {
        "latency": p95 <= probe.latency_threshold_seconds,
        "success": success >= probe.success_ratio,
        "errors": errors <= probe.error_ratio,
    }
    parts = [
        f"p95 {p95:.3f}s {'<=' if checks['latency'] else '>'} {probe.latency_threshold_seconds:g}s",
        f"success {success:.1%} {'>=' if checks['success'] else '<'} {probe.success_ratio:.1%}",
        f"errors {errors:.1%} {'<=' if checks['errors'] else '>'} {probe.error_ratio:.1%}",
    ]
    broken = [name for name, ok in checks.items() if not ok]
    message = f"{count} requests, {probe.concurrency} at a time: " + ", ".join(parts)
    if broken:
        message += f" (breaks the {', '.join(broken)} SLO)"
    statuses = Counter("error" if s.status is None else str(s.status) for s in samples)
    evidence = {
        "url": probe.url,
        "requests": count,
        "concurrency": probe.concurrency,
        "p95Seconds": round(p95, 6),
        "latencyThresholdSeconds": probe.latency_threshold_seconds,
        "successRatio": round(success, 6),
        "minSuccessRatio": probe.success_ratio,
        "errorRatio": round(errors, 6),
        "maxErrorRatio": probe.error_ratio,
        "statuses": dict(sorted(statuses.items())),
        "transportErrors": sorted({s.error for s in samples if s.error}),
        "broken": broken,
    }
    return not broken, message, evidence


def run_probe(probe: ProbeTarget, deadline: Deadline, verify: bool | str) -> list[ProbeSample]:
    """N GET requests, C in flight; no retries (a retry would hide the errors the probe measures)."""
    local = threading.local()
    sessions: list[requests.Session] = []
    lock = threading.Lock()
    cap = min(10.0, max(1.0, probe.latency_threshold_seconds * 10))

    def one(_: int) -> ProbeSample:
        timeout = min(cap, deadline.remaining())
        if timeout <= 0:
            return ProbeSample(
                seconds=0.0, status=None, error=f"not sent: total timeout of {deadline.seconds:g}s"
            )
        if not hasattr(local, "session"):
            local.session = requests.Session()
            with lock:
                sessions.append(local.session)
        started = time.perf_counter()
        try:
            response = local.session.get(probe.url, timeout=timeout, verify=verify)
            response.close()
        except requests.RequestException as error:
            return ProbeSample(
                seconds=time.perf_counter() - started, status=None, error=describe_error(error)
            )
        return ProbeSample(seconds=time.perf_counter() - started, status=response.status_code)

    try:
        with ThreadPoolExecutor(max_workers=probe.concurrency) as pool:
            return list(pool.map(one, range(probe.requests)))
    finally:
        for session in sessions:
            session.close()
