"""The Prefect server settings hocba starts its servers with are settings Prefect knows.

A misspelt ``PREFECT_SERVER_…`` variable is ignored without a word, so a service meant to be
off would keep running (or the task-run recorder would go back to one event per write).
"""

from __future__ import annotations

import pytest

from hocba.flows.prefect_server import SERVER_ENV, WORKER_ONLY_SERVER_ENV


@pytest.mark.parametrize("env", [SERVER_ENV, WORKER_ONLY_SERVER_ENV], ids=["all", "worker-only"])
def test_every_variable_is_a_prefect_setting(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.settings import Settings

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    known = Settings().to_environment_variables(exclude_unset=True)
    assert {name: known.get(name, "").lower() for name in env} == {
        name: value.lower() for name, value in env.items()
    }


def test_worker_only_servers_batch_task_runs_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings import Settings

    assert SERVER_ENV.items() <= WORKER_ONLY_SERVER_ENV.items()
    for name, value in WORKER_ONLY_SERVER_ENV.items():
        monkeypatch.setenv(name, value)
    services = Settings().server.services
    assert services.task_run_recorder.batch_size == 100
    assert services.task_run_recorder.enabled  # the flow-run history the UI shows
    assert services.event_persister.enabled
    assert not services.scheduler.enabled
