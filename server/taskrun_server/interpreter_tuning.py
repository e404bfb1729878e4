"""How a server process sets up the Python interpreter it runs on: how often threads offer the
GIL, and when the cyclic garbage collector runs. Both were measured on this server's own load;
the defaults suit short scripts, not a process that allocates thousands of objects a call."""

from __future__ import annotations

import gc
import sys

SWITCH_INTERVAL_SECONDS = 0.0005
"""How often a Python thread must offer the GIL (5 ms by default). Big requests are decoded on
a worker thread (api/offload.py); with the default, every step of a small call on the event
loop could wait 5 ms for it. Measured with four concurrent 1.5 MB creates: health p50 6.2 ms
and p99 98 ms at 5 ms; 2.4 and 48 ms at 0.5 ms."""

YOUNG_GENERATION_THRESHOLD = 10_000
"""Allocations between collections of the youngest generation (700 by default). A batch of
1,000 runs lives across many collections at the default, and every object alive at one is
promoted and scanned again by the older generations' collections. Measured under batch creates
of 1,000 runs, one server process: the collector's time 474 -> 164 ms in a 30-call run, and
server CPU per run 0.094-0.115 -> 0.069 ms. 50,000 bought no more and made each young
collection about 13 ms long."""


def tune_interpreter() -> None:
    """Before the server starts: the GIL's switch interval and the collector's thresholds."""
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)


def freeze_startup_heap() -> None:
    """Once the server has started: leave what startup built (modules, SQLAlchemy's tables and
    dialect, protobuf's descriptors, the server's objects) out of every later collection. A full
    collection walks every tracked object: with the startup heap in it, each took about 70 ms of
    a busy server's CPU and stalled every call as long (measured under batch creates: 9 full
    collections, a sixth of the process's CPU)."""
    gc.collect()
    gc.freeze()
