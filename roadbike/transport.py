"""HTTP under one deadline per check, bounded retries for transient failures, bounded bodies, and
evidence of what happened.

A network failure is never an exception the caller has to guess at: it is an `HttpFailure` that says which
request failed, how often it was tried and why, so a check can report it as evidence.

requests' `timeout` bounds each socket operation, not a request: a server that trickles its headers or
its body a byte at a time keeps a request going for ever. So every socket the session opens is watched
(`WatchedSession`), and when the check's deadline passes a watchdog shuts them down, which ends whatever
read is blocked on them at once. Bodies are read in chunks up to a size cap, never whole.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF_SECONDS = 5.0
# The largest body read from any answer: the OCI distribution spec lets registries refuse manifests over
# 4 MiB; a Prometheus rules answer of a large fleet stays well within 32 MiB.
DEFAULT_MAX_BODY = 4 << 20
CHUNK = 64 << 10
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


class SocketWatch:
    """The sockets a session opened; `cut()` shuts every one down, ending any read blocked on it."""

    def __init__(self) -> None:
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._lock = threading.Lock()

    def add(self, sock: Any) -> None:
        with self._lock, contextlib.suppress(TypeError):
            self._sockets.add(sock)

    def cut(self) -> None:
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError, ValueError):
                sock.shutdown(socket.SHUT_RDWR)

    @contextlib.contextmanager
    def deadline(self, deadline: Deadline) -> Iterator[None]:
        """Cut every socket when `deadline` passes, unless the block ended before."""
        timer = threading.Timer(deadline.remaining(), self.cut)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()


def _watched_pool(base: type, connection: type, watch: SocketWatch) -> type:
    class Connection(connection):  # type: ignore[valid-type, misc]
        def _new_conn(self) -> Any:
            sock = super()._new_conn()
            watch.add(sock)  # the raw socket: connect and TLS handshake
            return sock

        def connect(self) -> None:
            super().connect()
            watch.add(self.sock)  # the TLS socket once wrapped

    class Pool(base):  # type: ignore[valid-type, misc]
        ConnectionCls = Connection

    return Pool


class WatchedAdapter(HTTPAdapter):
    def __init__(self, watch: SocketWatch, **kwargs: Any) -> None:
        self.watch = watch
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _watched_pool(HTTPConnectionPool, HTTPConnection, self.watch),
            "https": _watched_pool(HTTPSConnectionPool, HTTPSConnection, self.watch),
        }


def watched_session(watch: SocketWatch, pool_size: int = 10) -> requests.Session:
    session = requests.Session()
    for prefix in ("http://", "https://"):
        session.mount(prefix, WatchedAdapter(watch, pool_connections=pool_size, pool_maxsize=pool_size))
    return session


class BodyTooLarge(Exception):
    pass


def read_body(response: requests.Response, max_bytes: int, deadline: Deadline | None = None) -> bytes:
    """The body in chunks, at most `max_bytes` (BodyTooLarge beyond), kept as `response.content`."""
    chunks = []
    size = 0
    try:
        for chunk in response.iter_content(CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise BodyTooLarge(f"the answer's body is larger than {max_bytes} bytes")
            if deadline is not None and deadline.expired():
                raise requests.exceptions.ReadTimeout("total timeout reached reading the body")
            chunks.append(chunk)
    finally:
        response.close()
    content = b"".join(chunks)
    response._content = content
    response._content_consumed = True  # type: ignore[attr-defined]
    return content


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
    watch: SocketWatch = field(default_factory=SocketWatch)
    session: requests.Session | None = None
    unreachable: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.session is None:
            self.session = watched_session(self.watch)

    @contextlib.contextmanager
    def check(self, seconds: float) -> Iterator[Deadline]:
        """One check's deadline: every request, retry, wait and body read of the check within it."""
        self.deadline = Deadline(seconds)
        with self.watch.deadline(self.deadline):
            yield self.deadline

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
        max_body: int = DEFAULT_MAX_BODY,
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
            assert self.session is not None
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
                    stream=True,
                )
                read_body(response, max_body, self.deadline)
            except BodyTooLarge as error:
                raise HttpFailure(method, url, str(error), attempt) from None
            except requests.exceptions.SSLError as error:
                if self.deadline.expired():
                    raise HttpFailure(method, url, self._expired(), attempt) from None
                raise HttpFailure(method, url, describe_error(error), attempt) from None
            except (requests.ConnectionError, requests.Timeout) as error:
                if self.deadline.expired():
                    raise HttpFailure(method, url, self._expired(), attempt) from None
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
                if self.deadline.expired():
                    raise HttpFailure(method, url, self._expired(), attempt) from None
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

    def _expired(self) -> str:
        return f"total timeout of {self.deadline.seconds:g}s reached"

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
        if self.session is not None:
            self.session.close()
