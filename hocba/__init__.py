"""hocba: Học bạ số cấp tiểu học."""

from __future__ import annotations

import gc
import threading

__version__ = "0.1.0"

_frozen = threading.Event()


def freeze_start_up(*, collect_all: bool = False) -> None:
    """Leave what this process made before its work starts out of the cyclic garbage
    collector's work from now on (``gc.freeze``), once per process.

    A worker or server process holds 160,000-300,000 objects of its imports and set-up
    (Prefect, SQLAlchemy, pydantic, FastAPI, hocba) that live as long as it does, and every
    collection of the oldest generation went through all of them (0.1-0.2 s each): about
    a tenth of a signing worker's CPU in ``bench/province.py`` and of the bundled portal's
    (docs/PERFORMANCE.md, "The portal's CPU per record (issue 14, session 11)" and "The
    garbage collector, the checkpoints and the audit writer (issue 14, session 12)").
    What is garbage already is collected first: the young generations (a few ms), or
    everything with ``collect_all`` (a server, once at start-up). Nothing allocated
    afterwards is frozen: its garbage is collected as before. The flows call it at their
    start (a Prefect process worker starts a process per flow run: once per run there),
    the portal once per serving process."""
    if _frozen.is_set():
        return
    _frozen.set()
    gc.collect(2 if collect_all else 1)
    gc.freeze()
