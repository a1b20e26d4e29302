"""Submission of issued records to the bundled province portal over real HTTP: package,
send, poll; lost answers and partial acceptance; nothing submitted twice."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from issuing import issue, reviewed_class, signer_of
from servers import serve_asgi
from sqlalchemy import text
from sqlmodel import Session

from hocba.dev.portal import PortalFaults, create_portal_app
from hocba.portal.client import PortalClient
from hocba.tasks.issuance import trust_anchors
from hocba.tasks.submission import plan_submissions, poll_results, send_pending

PORTAL_PASSWORD = "mat-khau-cong-so"


@pytest.fixture
def portal(keyed, pg_url: str) -> Iterator[tuple[object, str, object]]:  # type: ignore[no-untyped-def]
    """An issued class of DH01 and a running portal that trusts the test root."""
    ids, teacher = reviewed_class(keyed)
    issue(keyed, ids, teacher)
    schema = f"portal_sub_{os.getpid()}"
    app = create_portal_app(
        pg_url,
        schema,
        trusted_roots=trust_anchors(keyed.home),
        users={"DH01": PORTAL_PASSWORD},
        admin_token="admin",
        auto_approve_certificates=True,
    )
    with serve_asgi(app) as url:
        yield keyed, url, app.state.portal
    app.state.portal.store.drop()
    app.state.portal.store.engine.dispose()


def client(d, url: str) -> PortalClient:  # type: ignore[no-untyped-def]
    c = PortalClient(
        url,
        "DH01",
        PORTAL_PASSWORD,
        "DH01",
        signer_of(d, "truong-DH01"),
        timeout=10,
        retries=4,
        backoff=0.01,
        nam_hoc="2024-2025",
    )
    assert c.register_certificate(ma_kieu_chu_ky="USB_TOKEN", nha_phat_hanh="VNPT").approved
    return c


def run(d, url: str, **kw) -> tuple[object, object, object]:  # type: ignore[no-untyped-def]
    c = client(d, url)
    with Session(d.engine) as s:
        planned = plan_submissions(s, "DH01", **kw)
        s.commit()
    with Session(d.engine) as s:
        sent = send_pending(s, "DH01", c)
        s.commit()
    with Session(d.engine) as s:
        polled = poll_results(s, "DH01", c)
        s.commit()
    return planned, sent, polled


def states(d) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with d.engine.connect() as c:
        return dict(
            c.execute(
                text(
                    "SELECT state, count(*) FROM hoc_ba WHERE lookup_code IS NOT NULL "
                    "GROUP BY state"
                )
            ).all()
        )


def test_issued_records_are_submitted_and_accepted(portal) -> None:  # type: ignore[no-untyped-def]
    d, url, _ = portal
    n = states(d)["issued"]
    planned, sent, polled = run(d, url)
    assert (planned.planned, sent.sent, polled.accepted, polled.rejected) == (1, 1, n, 0)
    assert states(d) == {"accepted": n}
    again = run(d, url)  # a re-run finds nothing to do
    assert (again[0].planned, again[1].sent, again[2].accepted) == (0, 0, 0)


def test_lost_answers_never_make_a_duplicate(portal) -> None:  # type: ignore[no-untyped-def]
    d, url, p = portal
    p.faults.set(PortalFaults(drop_next=2, transactions=(1,)))  # done, but the answer is lost twice
    _, sent, _ = run(d, url)
    assert sent.sent == 1, sent.errors
    with p.store.engine.connect() as c:
        messages = c.execute(
            text(f"SELECT giao_dich, count(*) FROM {p.store.schema}.message GROUP BY 1")
        ).all()
    assert dict(messages).get(1) == 1, messages  # one submission stored, not three
    assert set(states(d)) == {"accepted"}


def test_partial_acceptance_shows_errors_and_resubmits(portal) -> None:  # type: ignore[no-untyped-def]
    d, url, p = portal
    p.faults.set(PortalFaults(reject_every=2, transactions=(1,)))
    _, _, polled = run(d, url)
    assert polled.rejected > 0 and polled.accepted > 0
    with d.engine.connect() as c:
        errors = c.execute(
            text("SELECT error, error_description FROM portal_result WHERE NOT accepted")
        ).all()
    assert errors and all(e[0] for e in errors)  # the portal's error fields are kept
    p.faults.set(PortalFaults())
    run(d, url, resubmit_rejected=True)
    assert set(states(d)) == {"accepted"}


def test_correction_revokes_at_the_portal(portal) -> None:  # type: ignore[no-untyped-def]
    from hocba.models import corrections
    from hocba.tasks.submission import plan_revocations, request_revocations

    d, url, p = portal
    run(d, url)
    rid = min(d.record_ids("DH01", state="accepted"))
    with Session(d.engine) as s:
        req = corrections.request(s, rid, d.actor("dh01.vt"), "Sai ngày sinh")
        corrections.decide(s, req, d.actor("phong.dh"), approve=True)
        s.commit()
    c = client(d, url)
    for _ in range(2):  # a re-run files nothing twice
        with Session(d.engine) as s:
            plan_revocations(s, "DH01")
            s.commit()
        with Session(d.engine) as s:
            request_revocations(s, "DH01", c)
            s.commit()
    with p.store.engine.connect() as conn:
        requests = conn.execute(
            text(f"SELECT count(*) FROM {p.store.schema}.revocation_request")
        ).scalar()
    assert requests == 1
    request_id = d.scalar("SELECT portal_request_id FROM correction_request WHERE id = :i", i=req)
    assert request_id and c.query_revocation(str(request_id)).trang_thai in (1, 2)


def test_the_planned_packages_are_sent_without_packaging_twice(portal) -> None:  # type: ignore[no-untyped-def]
    """What ``plan_submissions`` built is what a later send would rebuild from the
    database, byte for byte, so the same exchange sends it as it is."""
    from hocba.tasks.submission import _package

    d, url, _ = portal
    n = states(d)["issued"]
    c = client(d, url)
    with Session(d.engine) as s:
        planned = plan_submissions(s, "DH01")
        s.commit()
    assert planned.planned == len(planned.packages) == 1
    with Session(d.engine) as s:
        ((message_id, record_ids),) = (
            s.connection().execute(text("SELECT message_id, record_ids FROM submission")).all()
        )
        assert _package(s, list(record_ids)).content == planned.packages[message_id].content
    with Session(d.engine) as s:
        sent = send_pending(s, "DH01", c, planned.packages)
        s.commit()
    with Session(d.engine) as s:
        polled = poll_results(s, "DH01", c)
        s.commit()
    assert (sent.sent, polled.accepted) == (1, n) and states(d) == {"accepted": n}
