"""Opening a signing backend from a description that carries no secret.

A flow run's parameters, the dashboard's session and the CLI's arguments only ever hold a
:class:`SignerSpec` (which backend, where, whose key); the PIN or passphrase comes from a
``secret`` callback at the moment the key is opened: a hidden prompt in the CLI, the
password field in the dashboard, and on a Prefect worker the worker's own environment
(``HOCBA_KEY_PASSPHRASE``) or a Prefect Secret block ``hocba-key-<label>``. A remote
signing service needs no secret at all: the signer confirms on their phone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from cryptography import x509
from pydantic import BaseModel
from sqlmodel import Session

from hocba.config import load_settings
from hocba.pki.signer import Signer, SigningError, SoftwareSigner

if TYPE_CHECKING:
    from hocba.models.certificates import RegisteredCertificate


class SignerSpec(BaseModel):
    """Which backend signs; never a secret."""

    kind: Literal["pkcs12", "pkcs11", "remote"] = "pkcs12"
    pkcs11_module: str | None = None
    token: str | None = None
    key_label: str | None = None
    remote_url: str | None = None
    remote_user: str | None = None


def open_signer(
    spec: SignerSpec,
    key_ref: str | None,
    secret: Callable[[str], str],
    *,
    registered: x509.Certificate | None = None,
    anchors: Sequence[x509.Certificate] = (),
) -> Signer:
    """Open the backend of ``spec``; ``key_ref`` is the registered PKCS#12 path.

    ``registered`` and ``anchors`` (a PKCS#12 file only): the certificate the registry
    holds for that key and the configured trust anchors; see
    :meth:`~hocba.pki.signer.SoftwareSigner.from_pkcs12`."""
    if spec.kind == "pkcs11":
        from hocba.pki.pkcs11 import Pkcs11Signer

        if not (spec.pkcs11_module and spec.token and spec.key_label):
            raise SigningError("Ký bằng token cần thư viện PKCS#11, nhãn token và nhãn khóa.")
        return Pkcs11Signer.open(
            spec.pkcs11_module, spec.token, secret("Mã PIN của token"), spec.key_label
        )
    if spec.kind == "remote":
        from hocba.pki.remote import RemoteSigner

        if not (spec.remote_url and spec.remote_user):
            raise SigningError("Ký số từ xa cần địa chỉ dịch vụ và mã người dùng.")
        return RemoteSigner(spec.remote_url, spec.remote_user)
    if not key_ref:
        raise SigningError("Chưa có tệp khóa đã đăng ký cho người ký này.")
    return SoftwareSigner.from_pkcs12(
        key_ref, secret("Mật khẩu tệp khóa"), registered=registered, issuers=anchors
    )


_BLOCKS_SECONDS = 60.0
_blocks: tuple[float, frozenset[str]] = (0.0, frozenset())
_blocks_lock = threading.Lock()


def _secret_block_names() -> frozenset[str]:
    """Names of the Prefect Secret blocks, listed once a minute per process (empty when
    the API cannot be reached: the worker's environment is used, as before)."""
    global _blocks
    with _blocks_lock:
        until, names = _blocks
        if until > time.monotonic():
            return names
        found: set[str] = set()
        try:
            from prefect.client.orchestration import get_client

            with get_client(sync_client=True) as client:
                page = 200
                while True:
                    docs = client.read_block_documents_by_type(
                        "secret", offset=len(found), limit=page, include_secrets=False
                    )
                    found.update(d.name for d in docs if d.name)
                    if len(docs) < page:
                        break
        except Exception:  # no Prefect server: the environment it is
            found = set()
        _blocks = (time.monotonic() + _BLOCKS_SECONDS, frozenset(found))
        return _blocks[1]


def worker_secret(label: str) -> Callable[[str], str]:
    """The secret provider of a Prefect worker: a Secret block ``hocba-key-<label>`` when
    one exists, else ``HOCBA_KEY_PASSPHRASE`` of the worker's environment.

    Which blocks exist is listed once a minute per process (one API call) instead of
    asking for each label: a school's signing opens a key per teacher and per chunk, and
    each lookup of a missing block was a round trip to the Prefect API (a 404). A block
    created later is used within a minute.
    """

    def get(_prompt: str) -> str:
        block = f"hocba-key-{label.replace('.', '-')}"
        if block in _secret_block_names():
            try:
                from prefect.blocks.system import Secret

                secret: Secret = Secret.load(block)  # type: ignore[assignment]  # sync call
                return str(secret.get())
            except Exception:  # deleted meanwhile, or the server went away
                pass
        value = load_settings().key_passphrase
        if value is None:
            raise SigningError(
                "Máy chạy (worker) chưa có mật khẩu tệp khóa: đặt HOCBA_KEY_PASSPHRASE hoặc "
                f"tạo khối bí mật Prefect «hocba-key-{label}»."
            )
        return value

    return get


@dataclass(frozen=True)
class SigningKey:
    """The registered certificate that signs a slot, and whose secret opens its key."""

    registered: RegisteredCertificate
    #: the signer's label: the username, or ``truong-<MA_TRUONG>`` for the school's seal
    #: (the Secret block ``hocba-key-<label>``, the test PKI's and the remote service's name)
    label: str

    @property
    def key_ref(self) -> str | None:
        return self.registered.key_ref


class NoSigningKey(SigningError):
    """Nobody can sign this slot here: no approved registered certificate."""


def signing_key(
    session: Session, slot: str, school_code: str, staff_id: int | None = None
) -> SigningKey:
    """THE decision of which registered key signs ``slot``: for the seal (KY_PHAT_HANH)
    the school's newest approved organisation certificate, for GVCN and CBQL the person's
    (``staff_id``) newest approved personal certificate. Dashboard, flows and CLI all ask
    here; :class:`NoSigningKey` (Vietnamese, says what to do) when there is none.
    """
    from hocba.models import certificates

    if slot == "KY_PHAT_HANH":
        registered = certificates.school_certificates(session, school_code)
        approved = [c for c in registered if c.status == "approved"]
        if not approved:
            raise NoSigningKey(
                f"Chứng thư số tổ chức (con dấu) của trường {school_code} chưa được Phòng/Sở "
                "phê duyệt. Hãy đề nghị Phòng GDĐT duyệt ở trang Quản trị › Chứng thư số "
                "(xem `hocba cert list`)."
            )
        return SigningKey(approved[0], f"truong-{school_code}")
    if staff_id is None:
        raise ValueError(f"Ô ký {slot} cần người ký.")
    person = (
        session.connection()
        .exec_driver_sql("SELECT username, full_name FROM staff WHERE id = %s", (staff_id,))
        .one_or_none()
    )
    key = certificates.staff_certificate(session, staff_id)
    if person is None or key is None:
        who = person[1] if person else f"Cán bộ #{staff_id}"
        raise NoSigningKey(
            f"{who} chưa có chứng thư số cá nhân đã đăng ký và được phê duyệt. Hãy đề nghị "
            "quản trị hệ thống đăng ký chứng thư số (trang Quản trị › Chứng thư số; xem "
            "`hocba cert list`)."
        )
    return SigningKey(key, person[0])


def open_registered_signer(
    session: Session,
    slot: str,
    school_code: str,
    staff_id: int | None = None,
    spec: SignerSpec | None = None,
    anchors: Sequence[x509.Certificate] = (),
) -> Signer:
    """The backend that signs ``slot`` on a worker: :func:`signing_key` opened with
    ``spec`` (default: the registered PKCS#12 file), the secret from :func:`worker_secret`.
    With the trust ``anchors``, a PKCS#12 file's key is opened for the registered
    certificate (one PBKDF2 derivation instead of two: a school's GVCN stage opens a file
    per teacher)."""
    key = signing_key(session, slot, school_code, staff_id)
    return open_signer(
        spec or SignerSpec(),
        key.key_ref,
        worker_secret(key.label),
        registered=key.registered.certificate if anchors else None,
        anchors=anchors,
    )


def school_seal(session: Session, school_code: str, spec: SignerSpec | None = None) -> Signer:
    """The school's approved seal, opened on a worker (passphrase from ``worker_secret``)."""
    return open_registered_signer(session, "KY_PHAT_HANH", school_code, spec=spec)
