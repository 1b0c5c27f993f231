"""Keeping a long-running service's memory level and its pauses short: glibc's malloc arenas,
and the objects that start-up made kept out of the garbage collector's full passes.

glibc gives each thread that meets a busy arena one of its own, up to 8 per core, and an arena
keeps the memory it once held. The engine's threads (gRPC handlers, the poll cycle, the starts)
each end up with an arena, and its RSS grew by a fifth over a ten-minute load that held its
Python objects level (bench/README.md). Two arenas are plenty for a process whose Python code
holds one lock (its GIL) anyway: with them, the same load held the RSS level.

`MALLOC_ARENA_MAX` in the environment, read by glibc itself when the process starts, wins over
this. Not glibc (musl, macOS): nothing to do.

Python's full collection walks every object it tracks, and most of the engine's (about 150,000:
modules, classes, SQLAlchemy's and protobuf's tables) are made at start-up and live as long as
the process. Under load that pass ran every 8 to 13 s and took 80 to 105 ms, with every thread
stopped: the latency of whatever was in flight. `freeze_startup_objects` moves what exists once
the service is ready into the collector's permanent generation, so that a full pass walks only
what came after.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's <malloc.h>
ARENAS = 2


def cap_malloc_arenas(arenas: int = ARENAS) -> bool:
    """At most `arenas` malloc arenas from now on (call it before threads start). True if the
    cap was set here; False if the environment sets one, or the C library is not glibc."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 (glibc only: an AttributeError otherwise)
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(M_ARENA_MAX, arenas) != 1:
        log.warning("mallopt(M_ARENA_MAX, %d) failed; malloc arenas not capped", arenas)
        return False
    return True


def freeze_startup_objects() -> int:
    """Collect once, then leave every object alive now out of the collector's passes (call it
    once the service is ready to serve). Returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
