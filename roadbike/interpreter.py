"""The interpreter as a plan runs: a short batch that allocates millions of small objects and exits.

Python's cyclic garbage collector scans the whole heap on each full collection, and the heap of a large
fleet's plan is hundreds of megabytes of objects that all live until the plan ends: a 100-service plan
spent about 10 s of 37 s in 14 full collections that freed almost nothing (its peak memory grows by
5 % without them). Reference counting still frees everything that is not in a cycle. The switch
interval is shortened so the thread feeding the policy pack gets the lock between the program's
registrations often enough to keep the pack busy (at 5 ms a 100-service plan ended its program with
more than a thousand resources not yet sent to the pack).

Everything allocated while the collector was off still counts as its youngest generation: switched back
on as it was, the collector's next step would scan that whole heap at once (1.8 s after a 100-service
plan). Frozen and unfrozen first, those objects join the oldest generation, as if they had survived, and
the young count starts again from zero; they stay collectable. A process that has frozen objects of
its own keeps them frozen (and pays the young collection).

Used by `roadbike plan` and by the benchmark's floor, so the two are measured under the same settings.
Only the standard library here: the floor imports this and `pulumi` alone.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager

SWITCH_INTERVAL_SECONDS = 0.001


@contextmanager
def batch_interpreter() -> Iterator[None]:
    """No cyclic garbage collection and a short thread switch interval while the block runs; both put
    back as they were after it (a test session runs many plans in one process)."""
    collecting, interval = gc.isenabled(), sys.getswitchinterval()
    gc.disable()
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)
        if collecting:
            if gc.get_freeze_count() == 0:  # unfreeze() would also release what someone else froze
                gc.freeze()
                gc.unfreeze()
            gc.enable()
