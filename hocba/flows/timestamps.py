"""Long-term validity flows (issue 12): upgrade records signed while the TSA was down, and
renew archive timestamps before their TSA certificate expires.

A table of contents over :mod:`hocba.tasks.long_term`. Both flows claim chunks of records
with ``FOR UPDATE SKIP LOCKED`` (two workers never take the same record), commit per chunk
and report "n ok, m failed: why". The TSA / OCSP come from ``HOCBA_TSA_URL`` /
``HOCBA_OCSP_URL`` in the worker's environment, never from run parameters.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from hocba import db
from hocba.config import load_settings
from hocba.pki.ocsp import OcspClient
from hocba.tasks.issuance import trust_anchors
from hocba.tasks.long_term import (
    configured_crls,
    configured_tsa,
    renew_archive,
    upgrade_waiting,
)


def until_done(
    run_chunk: Callable[[], tuple[int, int, str]],
    max_chunks: int,
    say: Callable[[str], object] | None = None,
) -> dict[str, int]:
    """Run chunks until one does nothing (or ``max_chunks``): "n ok, m failed" in total.
    ``say`` (default: the flow run's logger) gets each chunk's summary."""
    say = say or get_run_logger().info
    total_ok = total_failed = 0
    for _ in range(max_chunks):
        ok, failed, summary = run_chunk()
        say(summary)
        total_ok += ok
        total_failed += failed
        if ok == 0:
            break
    return {"ok": total_ok, "failed": total_failed}


# Each chunk claims whatever is due *now*: the same arguments must run again, not hit
# Prefect's per-run input cache.
@task(name="bổ sung dấu thời gian (một lô)", cache_policy=NO_CACHE)
def upgrade_chunk(limit: int) -> tuple[int, int, str]:
    tsa = configured_tsa()
    if tsa is None:
        return 0, 0, "chưa cấu hình HOCBA_TSA_URL"
    with db.session_scope() as session:
        result = upgrade_waiting(session, tsa, trust_anchors(load_settings().home), limit=limit)
    return len(result.ok), len(result.failed), result.summary()


@flow(name="bo-sung-dau-thoi-gian")
def upgrade_timestamps_flow(chunk: int = 200, max_chunks: int = 50) -> dict[str, int]:
    """Add the missing signature timestamps to queued records, chunk after chunk, until
    the queue is empty or the TSA fails again (the rest waits for the next run)."""
    return until_done(lambda: upgrade_chunk(chunk), max_chunks)


@task(name="gia hạn dấu thời gian lưu trữ (một lô)", cache_policy=NO_CACHE)
def renew_chunk(horizon_days: int, limit: int) -> tuple[int, int, str]:
    settings = load_settings()
    tsa = configured_tsa()
    if tsa is None:
        return 0, 0, "chưa cấu hình HOCBA_TSA_URL"
    ocsp = OcspClient(settings.ocsp_url) if settings.ocsp_url else None
    with db.session_scope() as session:
        result = renew_archive(
            session,
            tsa,
            trust_anchors(settings.home),
            ocsp=ocsp,
            crls=configured_crls(),
            horizon=dt.timedelta(days=horizon_days),
            limit=limit,
        )
    return len(result.ok), len(result.failed), result.summary()


@flow(name="gia-han-dau-thoi-gian")
def renew_timestamps_flow(
    horizon_days: int = 180, chunk: int = 200, max_chunks: int = 50
) -> dict[str, int]:
    """Archive-timestamp every issued record whose evidence expires within
    ``horizon_days``, after validating its whole chain (signatures, time-stamps, OCSP);
    records that fail validation are reported and left as they are."""
    return until_done(lambda: renew_chunk(horizon_days, chunk), max_chunks)
