"""Issuing real records in tests: keys, a reviewed class, the three signatures.

Shared by the tests of issuance, transfers and the dashboard (imported as ``issuing``;
the ``keyed`` fixture lives in tests/conftest.py)."""

from __future__ import annotations

from sqlmodel import Session

from hocba.models import certificates
from hocba.models.lifecycle import SYSTEM, transition
from hocba.pki.signer import SoftwareSigner
from hocba.tasks.issuance import sign_batch, trust_anchors

PASSWORD = "mat-khau-demo"


def signer_of(district, username: str) -> SoftwareSigner:  # type: ignore[no-untyped-def]
    with Session(district.engine) as s:
        if username.startswith("truong-"):
            ref = certificates.school_certificates(s, username[7:])[0].key_ref
        else:
            ref = certificates.staff_certificate(s, district.actor(username).staff_id).key_ref
    return SoftwareSigner.from_pkcs12(ref, PASSWORD)


def reviewed_class(district) -> tuple[list[int], object]:  # type: ignore[no-untyped-def]
    """Every record of DH01's first class, approved by its teacher."""
    ids = district.record_ids("DH01")
    teacher = district.homeroom_of(ids[0])
    ids = [r for r in ids if district.homeroom_of(r).staff_id == teacher.staff_id]
    for rid in ids:
        district.force_state(rid, "draft", flags="[]")
    with Session(district.engine) as s:
        transition(s, ids, "send_to_review", SYSTEM)
        assert transition(s, ids, "approve", teacher).ok == ids
        s.commit()
    return ids, teacher


def issue(district, ids, teacher) -> None:  # type: ignore[no-untyped-def]
    with Session(district.engine) as s:
        assert (
            sign_batch(
                s, ids, "GVCN", teacher, signer_of(district, teacher_username(district, teacher))
            ).ok
            == ids
        )
        assert (
            sign_batch(s, ids, "CBQL", district.actor("dh01.ht"), signer_of(district, "dh01.ht")).ok
            == ids
        )
        res = sign_batch(
            s,
            ids,
            "KY_PHAT_HANH",
            district.actor("dh01.vt"),
            signer_of(district, "truong-DH01"),
            trust_anchors=trust_anchors(district.home),
        )
        assert res.ok == ids, res.failed
        s.commit()


def teacher_username(district, teacher) -> str:  # type: ignore[no-untyped-def]
    return str(district.scalar("SELECT username FROM staff WHERE id = :i", i=teacher.staff_id))


def assert_xmlsec1_verifies(path, root_pem) -> None:  # type: ignore[no-untyped-def]
    """Each of the three signatures of ``path`` verifies with the independent xmlsec1."""
    import shutil
    import subprocess

    xmlsec1 = shutil.which("xmlsec1")
    assert xmlsec1, "xmlsec1 is missing: scripts/install.sh installs it (apt-get)"
    for slot in ("GVCN", "CBQL", "KY_PHAT_HANH"):
        out = subprocess.run(
            [
                xmlsec1,
                "--verify",
                "--trusted-pem",
                str(root_pem),
                "--id-attr:Id",
                "DU_LIEU_HOC_BA",
                "--node-xpath",
                f"/HOC_BA/DANH_SACH_THONG_TIN_KY/{slot}/*[local-name()='Signature']",
                "--enabled-reference-uris",
                "same-doc",
                str(path),
            ],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, (slot, out.stderr)


def forge(  # type: ignore[no-untyped-def]
    issued: bytes,
    gvcn,
    cbql,
    seal,
    *,
    lookup_code: str | None = None,
    times=None,
    slot_cccd: dict[str, str] | None = None,
) -> bytes:
    """What an attacker builds from an issued record with the project's own signer: the
    pupil's name and a score changed, a new lookup code (or ``lookup_code``), the three
    slots emptied and signed again by the signers ``gvcn``, ``cbql``, ``seal`` (any
    :class:`~hocba.pki.signer.Signer`, e.g. the school's seal in every slot) at
    ``times`` (default: now). Each personal slot's SO_CCCD is the signer's CCCD as
    issuance writes it, unless ``slot_cccd`` says otherwise."""
    import datetime as dt
    import uuid

    from lxml import etree

    from hocba.xml.dsig import sign_slots
    from hocba.xml.record import parse_record_xml_safely

    root = parse_record_xml_safely(issued)
    general = root.find("DU_LIEU_HOC_BA/THONG_TIN_CHUNG")
    general.find("HO_VA_TEN").text = "Lê Minh Anh Tuấn"  # type: ignore[union-attr]
    general.find("MA_TRA_CUU_UUID").text = lookup_code or str(uuid.uuid4())  # type: ignore[union-attr]
    score = root.find("DU_LIEU_HOC_BA/TONG_KET//DIEM_KIEM_TRA_DINH_KY")
    if score is not None:
        score.text = "10"
    for slot in ("GVCN", "CBQL", "KY_PHAT_HANH"):
        element = root.find(f"DANH_SACH_THONG_TIN_KY/{slot}")
        element[:] = []  # type: ignore[index]
        element.text = None  # type: ignore[union-attr]
    document = b'<?xml version="1.0" encoding="UTF-8"?>\n' + etree.tostring(root, encoding="UTF-8")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    times = times or (now, now, now)
    for slot, signer, when in zip(
        ("GVCN", "CBQL", "KY_PHAT_HANH"), (gvcn, cbql, seal), times, strict=True
    ):
        extra = {}
        if slot != "KY_PHAT_HANH":
            cccd = (slot_cccd or {}).get(slot) or certificate_cccd(signer.certificate)
            extra = {"SO_CCCD": cccd} if cccd else {}
        (document,) = sign_slots(
            [document], slot, signer, when, extra, check_certificate_validity=False
        )
    return document


def certificate_cccd(certificate) -> str | None:  # type: ignore[no-untyped-def]
    """The CCCD a personal certificate names (``serialNumber=CCCD:<12 digits>``)."""
    from cryptography import x509

    for attribute in certificate.subject.get_attributes_for_oid(x509.NameOID.SERIAL_NUMBER):
        if str(attribute.value).startswith("CCCD:"):
            return str(attribute.value)[5:]
    return None
