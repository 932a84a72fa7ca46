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
from roadbike.transport import BodyTooLarge, Deadline, SocketWatch, describe_error, read_body, watched_session

# A health endpoint answers in a few bytes; more than this is read no further (and counts as an error).
PROBE_MAX_BODY = 1 << 20


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


@dataclass(frozen=True)
class ProbeRun:
    """What one probe run did: the requests actually made, of the planned ones, and why it stopped short."""

    samples: tuple[ProbeSample, ...]
    planned: int
    stopped: str | None = None  # None: every planned request was made

    @property
    def complete(self) -> bool:
        return self.stopped is None and len(self.samples) == self.planned


def evaluate_probe(run: ProbeRun, probe: ProbeTarget) -> tuple[bool, str, dict[str, Any]]:
    """Pure: the requests a probe run made against the SLO thresholds; a run that stopped short fails,
    as its ratios and p95 would speak only for the requests made before the time budget ran out."""
    samples = run.samples
    count = len(samples)
    p95 = percentile([s.seconds for s in samples], 0.95)
    success = sum(s.succeeded for s in samples) / count if count else 0.0
    errors = sum(s.errored for s in samples) / count if count else 1.0
    checks = {
        "latency": p95 <= probe.latency_threshold_seconds,
        "success": success >= probe.success_ratio,
        "errors": errors <= probe.error_ratio,
    }
    broken = [name for name, ok in checks.items() if not ok] if count else []
    parts = [
        f"p95 {p95:.3f}s {'<=' if checks['latency'] else '>'} {probe.latency_threshold_seconds:g}s",
        f"success {success:.1%} {'>=' if checks['success'] else '<'} {probe.success_ratio:.1%}",
        f"errors {errors:.1%} {'<=' if checks['errors'] else '>'} {probe.error_ratio:.1%}",
    ]
    if run.complete:
        message = f"{count} requests, {probe.concurrency} at a time: " + ", ".join(parts)
    else:
        message = f"sent {count} of {run.planned} requests, {probe.concurrency} at a time: {run.stopped}"
        if count:
            message += "; over those sent: " + ", ".join(parts)
    if broken:
        message += f" (breaks the {', '.join(broken)} SLO)"
    statuses = Counter("error" if s.status is None else str(s.status) for s in samples)
    evidence = {
        "url": probe.url,
        "requests": count,
        "plannedRequests": run.planned,
        "stoppedShort": run.stopped,
        "concurrency": probe.concurrency,
        "p95Seconds": round(p95, 6) if count else None,
        "latencyThresholdSeconds": probe.latency_threshold_seconds,
        "successRatio": round(success, 6),
        "minSuccessRatio": probe.success_ratio,
        "errorRatio": round(errors, 6),
        "maxErrorRatio": probe.error_ratio,
        "statuses": dict(sorted(statuses.items())),
        "transportErrors": sorted({s.error for s in samples if s.error}),
        "broken": broken,
    }
    return run.complete and not broken, message, evidence


class _Tickets:
    """Hands out the planned requests one at a time while the time budget lasts: at most `concurrency`
    are in flight and none is scheduled ahead, so the run's memory and duration stay bounded."""

    def __init__(self, planned: int, deadline: Deadline) -> None:
        self._left = planned
        self._deadline = deadline
        self._lock = threading.Lock()
        self.stopped: str | None = None

    def take(self) -> float | None:
        """The time left for one more request, or None when none is to be sent."""
        with self._lock:
            if self._left <= 0 or self.stopped is not None:
                return None
            remaining = self._deadline.remaining()
            if remaining <= 0:
                self.stopped = f"total timeout of {self._deadline.seconds:g}s exhausted"
                return None
            self._left -= 1
            return remaining

    def stop(self, reason: str) -> None:
        with self._lock:
            self.stopped = self.stopped or reason


def run_probe(probe: ProbeTarget, deadline: Deadline, verify: bool | str) -> ProbeRun:
    """N GET requests, C in flight, within the run's deadline; no retries (a retry would hide the errors
    the probe measures)."""
    tickets = _Tickets(probe.requests, deadline)
    samples: list[ProbeSample] = []
    lock = threading.Lock()
    cap = min(10.0, max(1.0, probe.latency_threshold_seconds * 10))
    # One watchdog for the whole probe: at the deadline every socket is shut down, so a server that
    # trickles its answers cannot hold a request (and the check) past it.
    watch = SocketWatch()

    def worker() -> None:
        with watched_session(watch, pool_size=1) as session:
            while (remaining := tickets.take()) is not None:
                sample = _request(session, probe.url, min(cap, remaining), verify)
                if sample.error and remaining < cap and deadline.expired():
                    # cut off by the run's budget, not by the service: not a measurement
                    tickets.stop(f"total timeout of {deadline.seconds:g}s exhausted")
                    return
                with lock:
                    samples.append(sample)

    workers = min(probe.concurrency, probe.requests)
    with watch.deadline(deadline), ThreadPoolExecutor(max_workers=workers) as pool:
        running = [pool.submit(worker) for _ in range(workers)]
        try:
            for future in running:
                future.result()
        except BaseException:  # Ctrl-C: the requests in flight finish, no new one starts
            tickets.stop("interrupted")
            raise
    return ProbeRun(samples=tuple(samples), planned=probe.requests, stopped=tickets.stopped)


def _request(session: requests.Session, url: str, timeout: float, verify: bool | str) -> ProbeSample:
    started = time.perf_counter()
    try:
        response = session.get(url, timeout=timeout, verify=verify, stream=True)
        read_body(response, PROBE_MAX_BODY)
    except BodyTooLarge as error:
        return ProbeSample(seconds=time.perf_counter() - started, status=None, error=str(error))
    except requests.RequestException as error:
        return ProbeSample(seconds=time.perf_counter() - started, status=None, error=describe_error(error))
    return ProbeSample(seconds=time.perf_counter() - started, status=response.status_code)
