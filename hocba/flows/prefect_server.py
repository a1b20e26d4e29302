"""Settings for the Prefect servers hocba starts (``hocba up``, the demo's temporary server,
``bench/province.py``), as environment variables for the server's process.

Measured with ``bench/province.py`` and a warm server (docs/PERFORMANCE.md, "Prefect server
CPU per record"): what a server costs per run is its task-run recorder, not its HTTP API.
"""

from __future__ import annotations

#: Every hocba Prefect server. The task-run recorder (the service that turns the task-run
#: state events the workers send over the events websocket into ``task_run`` and
#: ``task_run_state`` rows) writes one event per transaction by default: ~50 ms of the
#: server's CPU per task run (three events). Written 100 at a time — or every
#: ``PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL`` seconds (5) when fewer
#: wait — a task run costs ~10 ms; its state shows in the UI at most 5 s later. Nothing a
#: flow does waits on those rows: the engine in the worker orchestrates its task runs.
SERVER_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
}

#: The Prefect server's background services a run of flows called directly needs not:
#: no schedules, no work pools or workers (nor their clean-up queue), no pauses, no
#: automations. Their loops cost the server ~1.2% of a core whatever the work (half its
#: idle CPU), i.e. ~0.7 CPU-ms per record in a 12-school province run. Set for the demo's
#: temporary server and by ``bench/province.py``; a deployment's server (``hocba up``)
#: keeps them all.
WORKER_ONLY_SERVER_ENV = {
    **SERVER_ENV,
    **{
        f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false"
        for name in (
            "SCHEDULER",
            "LATE_RUNS",
            "FOREMAN",
            "CANCELLATION_CLEANUP",
            "PAUSE_EXPIRATIONS",
            "REPOSSESSOR",
            "TRIGGERS",
            "EVENT_LOGGER",
            "CLEANUP_RECONCILER",
        )
    },
}
