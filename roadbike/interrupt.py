"""The first Ctrl-C or SIGTERM ends the command at once, with exit 130, after stopping what it started.

Raising KeyboardInterrupt at a random point of a plan unwinds through the Pulumi SDK's event loop and
thread pools (asyncio noise on stderr, a wait on a thread that never ends) and can cut a `finally` short
halfway through stopping the policy pack processes. Instead the handler runs the registered cleanups
(stop every pack process, remove the half-written plan directory), each on its own so one that fails
does not keep the others from running, writes one line to stderr and leaves with `os._exit(130)`.

Code that must not be cut in two (starting a process and registering it, swapping a finished plan
directory in) runs under `critical()`: a signal that arrives there is acted on when it ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from roadbike.exits import EXIT_INTERRUPTED

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_lock = threading.RLock()
_cleanups: dict[int, Callable[[], None]] = {}
_next_id = 0
_depth = 0
_pending: int | None = None
_installed = False
_message = "interrupted"


def install(message: str) -> None:
    """Take over SIGINT and SIGTERM for the rest of the process (the main thread only)."""
    global _installed, _message
    _message = message
    for signum in SIGNALS:
        signal.signal(signum, _handler)
    _installed = True


def ignore() -> None:
    """From here on SIGINT and SIGTERM are ignored: the command has done its work and is only returning
    (the interpreter would otherwise restore the default action while it shuts down, and a signal then
    kills it with the work complete)."""
    if _installed:
        for signum in SIGNALS:
            signal.signal(signum, signal.SIG_IGN)


def installed() -> bool:
    return _installed


def on_interrupt(cleanup: Callable[[], None]) -> int:
    """Register a cleanup to run on interrupt; returns a key for `forget`."""
    global _next_id
    with _lock:
        _next_id += 1
        _cleanups[_next_id] = cleanup
        return _next_id


def forget(key: int) -> None:
    with _lock:
        _cleanups.pop(key, None)


@contextlib.contextmanager
def critical() -> Iterator[None]:
    """A block a signal must not cut in two: the interrupt waits for its end."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _pending is not None:
            _exit()


def _handler(signum: int, frame: Any) -> None:
    global _pending
    if _pending is not None and _depth == 0:
        _exit()  # a second signal while the first's cleanups run: leave now
    _pending = signum
    if _depth == 0:
        _exit()


def run_cleanups() -> None:
    """Every registered cleanup, newest first, each one's failure ignored (the others still run)."""
    with _lock:
        cleanups = list(reversed(_cleanups.values()))
        _cleanups.clear()
    for cleanup in cleanups:
        with contextlib.suppress(BaseException):
            cleanup()


def _exit() -> None:
    # Hard deadline: whatever a cleanup does, the process is gone within 4 seconds.
    threading.Timer(4.0, lambda: os._exit(EXIT_INTERRUPTED)).start()
    run_cleanups()
    with contextlib.suppress(OSError):
        os.write(2, f"error: {_message}\n".encode())
    os._exit(EXIT_INTERRUPTED)
