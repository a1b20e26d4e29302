"""A flow's process leaves its start-up objects out of the garbage collector's work once
(hocba.freeze_start_up): the first flow run freezes them, later runs freeze
nothing more, and what a run allocates afterwards is still collected."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import gc, json, weakref
import hocba.flows.signing  # what a worker imports before its first flow run
from hocba import freeze_start_up

before = gc.get_freeze_count()
freeze_start_up()
first = gc.get_freeze_count()

class Node:
    pass

a, b = Node(), Node()
a.other, b.other = b, a  # a cycle made after the freeze
gone = weakref.ref(a)
freeze_start_up()  # the next flow run in the same process
second = gc.get_freeze_count()
del a, b
gc.collect()
print(json.dumps({"before": before, "first": first, "second": second,
                  "cycle_collected": gone() is None}))
"""


def test_start_up_frozen_once_and_later_garbage_collected() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=120
    ).stdout

    r = json.loads(out.strip().splitlines()[-1])
    assert r["before"] == 0
    assert r["first"] > 50_000  # Prefect, SQLAlchemy, hocba: the modules' objects
    assert r["second"] == r["first"]  # nothing more frozen by the second run
    assert r["cycle_collected"]  # a run's own garbage is still collected
