"""The paper copies of a school's records: one signed PDF book per pupil, and one merged
file per class for the printer (issue 4 §5).

A pupil's book spans every year the system holds for them: the records issued here and
the ones inherited by transfer (``received_record``), oldest first. Each book is signed by
the principal and sealed by the school (``hocba/pdf/sign.py``), with the latest year's
signed XML attached; with a TSA configured it is then made PAdES B-LTA
(``hocba/tasks/pdf_lta.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import text
from sqlmodel import Session

from hocba.models import stored_xml
from hocba.pdf.render import print_class, render_book
from hocba.pdf.sign import sign_pdfs
from hocba.pki.signer import Signer
from hocba.tasks.pdf_lta import lta_from_configuration

_YEARS_SQL = """
    SELECT r.pupil_id, y.start_year, r.signed_xml, true AS stored FROM hoc_ba r
    JOIN school_year y ON y.id = r.school_year_id
    WHERE r.pupil_id = ANY(:pupils) AND r.state IN ('issued', 'submitted', 'accepted', 'rejected')
    UNION ALL
    SELECT pupil_id, CAST(left(school_year, 4) AS int), xml, false FROM received_record rr
    WHERE pupil_id = ANY(:pupils) AND NOT EXISTS (  -- the copy of a record issued here
        SELECT 1 FROM hoc_ba h WHERE h.lookup_code = rr.lookup_code)
    ORDER BY 1, 2
"""


def pupil_years(session: Session, pupil_ids: Sequence[int]) -> dict[int, list[bytes]]:
    """Every issued year of each pupil (own and inherited), oldest first; one query."""
    conn = session.connection()
    rows = conn.execute(text(_YEARS_SQL), {"pupils": list(pupil_ids)}).all()
    docs = stored_xml.unpack_where(conn, [(xml, own) for _p, _y, xml, own in rows])
    years: dict[int, list[bytes]] = {}
    for (pupil_id, *_), doc in zip(rows, docs, strict=True):
        years.setdefault(pupil_id, []).append(doc)
    return years


def make_books(
    session: Session,
    record_ids: Sequence[int],
    *,
    principal: Signer,
    seal: Signer,
    verify_url: str,
    progress: Callable[[int, int], None] | None = None,
) -> dict[int, bytes]:
    """Render and sign the book of each record's pupil; returns PDFs by record id."""
    rows = (
        session.connection()
        .execute(
            text(
                "SELECT id, pupil_id, signed_xml FROM hoc_ba WHERE id = ANY(:ids) "
                "AND lookup_code IS NOT NULL AND xml_sha256 IS NOT NULL ORDER BY id"
            ),
            {"ids": list(record_ids)},
        )
        .all()
    )
    years = pupil_years(session, [r.pupil_id for r in rows])
    docs = stored_xml.unpack(session.connection(), [r.signed_xml for r in rows])
    items = [
        (render_book(years[r.pupil_id], verify_url=verify_url), doc or b"")
        for r, doc in zip(rows, docs, strict=True)
    ]
    signed = lta_from_configuration(
        sign_pdfs(items, principal=principal, seal=seal, progress=progress)
    )
    return {r.id: pdf for r, pdf in zip(rows, signed, strict=True)}


def class_print_file(books: Sequence[bytes]) -> bytes:
    """One merged file for the printer (no valid signatures: see ``print_class``)."""
    return print_class(books)
