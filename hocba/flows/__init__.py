"""Prefect flows: each stage of the record's lifecycle in chunks of work (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import gc
import threading

_frozen = threading.Event()


def freeze_start_up() -> None:
    """Leave what this process made before its first flow run out of the cyclic garbage
    collector's work from now on (``gc.freeze``), once per process.

    A worker process holds ~160,000 objects of its imports (Prefect, SQLAlchemy, pydantic,
    hocba) that live as long as it does, and every collection of the oldest generation
    went through all of them: ~0.1-0.2 s each, about a tenth of a signing worker's CPU in
    ``bench/province.py`` (docs/PERFORMANCE.md, "The garbage collector and the
    checkpoints (issue 14, session 12)"). The young generations are collected first (a
    few ms), so little of the start-up's garbage is kept; nothing a flow run allocates
    afterwards is frozen, its garbage is collected as before. Called at the start of the
    flows that work through many records; a Prefect process worker starts one process
    per flow run, so there it is once per run."""
    if _frozen.is_set():
        return
    _frozen.set()
    gc.collect(1)
    gc.freeze()
