"""HTTP with a total deadline, bounded retries for transient failures, and evidence of what happened.

A network failure is never an exception the caller has to guess at: it is an `HttpFailure` that says which
request failed, how often it was tried and why, so a check can report it as evidence.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF_SECONDS = 5.0
Progress = Callable[[str], None]


class Deadline:
    """The total time budget of one verify run; every wait and every request timeout is cut to it."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end = clock() + seconds

    def remaining(self) -> float:
        return max(0.0, self._end - self._clock())

    def expired(self) -> bool:
        return self.remaining() <= 0.0


class HttpFailure(Exception):
    """A request that got no usable answer: refused, timed out, TLS failure, or the deadline passed."""

    def __init__(self, method: str, url: str, reason: str, attempts: int) -> None:
        tries = f"after {attempts} attempt{'s' if attempts != 1 else ''}" if attempts else "not sent"
        super().__init__(f"{method} {url}: {reason} ({tries})")
        self.method = method
        self.url = url
        self.reason = reason
        self.attempts = attempts

    def evidence(self) -> dict[str, Any]:
        return {"request": f"{self.method} {self.url}", "error": self.reason, "attempts": self.attempts}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def describe_error(error: requests.RequestException) -> str:
    """A one-line reason without the nested urllib3 repr noise."""
    if isinstance(error, requests.exceptions.SSLError):
        return f"TLS verification failed ({_innermost(error)}); pass --ca-bundle with the registry's CA"
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return "connect timeout"
    if isinstance(error, requests.exceptions.ReadTimeout):
        return "read timeout"
    if isinstance(error, requests.exceptions.ConnectionError):
        return f"connection failed: {_innermost(error)}"
    return f"{type(error).__name__}: {_innermost(error)}"


def _innermost(error: BaseException) -> str:
    """The root cause's own words: `Connection refused`, `self-signed certificate`, a DNS failure."""
    seen = error
    for _ in range(16):
        inner = getattr(seen, "reason", None)
        if not isinstance(inner, BaseException):
            inner = seen.__cause__ or seen.__context__
        if inner is None:
            inner = next((a for a in seen.args if isinstance(a, BaseException)), None)
        if inner is None or inner is seen:
            break
        seen = inner
    verify_message = getattr(seen, "verify_message", None)
    if verify_message:
        return str(verify_message)
    if isinstance(seen, OSError) and seen.strerror:
        return seen.strerror
    return str(seen)


def retry_after_seconds(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


@dataclass
class Transport:
    """One `requests.Session` under a deadline; retries connection errors, timeouts, 5xx and 429."""

    deadline: Deadline
    verify: bool | str = True
    progress: Progress = field(default=lambda _message: None)
    max_attempts: int = 4
    request_timeout: float = 10.0
    backoff: float = 0.25
    sleep: Callable[[float], None] = time.sleep
    session: requests.Session = field(default_factory=requests.Session)
    unreachable: dict[str, str] = field(default_factory=dict)

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        data: bytes | None = None,
        retry: bool = True,
    ) -> requests.Response:
        """The response (a retried status is returned as is once attempts run out) or `HttpFailure`."""
        origin = _origin(url)
        if origin in self.unreachable:
            raise HttpFailure(method, url, f"{origin} was unreachable earlier: {self.unreachable[origin]}", 0)
        attempts = self.max_attempts if retry else 1
        reason = "total timeout reached before the request"
        for attempt in range(1, attempts + 1):
            timeout = min(self.request_timeout, self.deadline.remaining())
            if timeout <= 0:
                raise HttpFailure(
                    method, url, f"total timeout of {self.deadline.seconds:g}s reached", attempt - 1
                )
            try:
                response = self.session.request(
                    method,
                    url,
                    headers=dict(headers or {}),
                    auth=auth,
                    params=params,
                    data=data,
                    timeout=timeout,
                    verify=self.verify,
                )
            except requests.exceptions.SSLError as error:
                raise HttpFailure(method, url, describe_error(error), attempt) from None
            except (requests.ConnectionError, requests.Timeout) as error:
                reason = describe_error(error)
                wait = self._wait(attempt, attempts, None)
                if wait is None:
                    if isinstance(error, requests.ConnectionError) and not isinstance(
                        error, requests.Timeout
                    ):
                        self.unreachable[origin] = reason
                    raise HttpFailure(method, url, reason, attempt) from None
                self.progress(f"  {method} {url}: {reason}; retry {attempt + 1}/{attempts} in {wait:.2f}s")
                self.sleep(wait)
                continue
            except requests.RequestException as error:
                raise HttpFailure(method, url, describe_error(error), attempt) from None
            if response.status_code not in RETRIED_STATUSES:
                return response
            wait = self._wait(attempt, attempts, retry_after_seconds(response))
            if wait is None:
                return response
            self.progress(
                f"  {method} {url}: {response.status_code}; retry {attempt + 1}/{attempts} in {wait:.2f}s"
            )
            self.sleep(wait)
        raise HttpFailure(method, url, reason, attempts)

    def _wait(self, attempt: int, attempts: int, retry_after: float | None) -> float | None:
        """Seconds to wait before the next attempt, or None when there is no next attempt in time."""
        if attempt >= attempts:
            return None
        wait = retry_after if retry_after is not None else self.backoff * 2 ** (attempt - 1)
        wait = min(wait, MAX_BACKOFF_SECONDS)
        if wait >= self.deadline.remaining():
            return None
        return wait

    def close(self) -> None:
        self.session.close()
