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
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel
from sqlmodel import Session

from hocba.config import load_settings
from hocba.pki.signer import Signer, SigningError, SoftwareSigner


class SignerSpec(BaseModel):
    """Which backend signs; never a secret."""

    kind: Literal["pkcs12", "pkcs11", "remote"] = "pkcs12"
    pkcs11_module: str | None = None
    token: str | None = None
    key_label: str | None = None
    remote_url: str | None = None
    remote_user: str | None = None


def open_signer(spec: SignerSpec, key_ref: str | None, secret: Callable[[str], str]) -> Signer:
    """Open the backend of ``spec``; ``key_ref`` is the registered PKCS#12 path."""
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
    return SoftwareSigner.from_pkcs12(key_ref, secret("Mật khẩu tệp khóa"))


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

                return str(Secret.load(block).get())
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


def school_seal(session: Session, school_code: str, spec: SignerSpec | None = None) -> Signer:
    """The school's approved seal, opened on a worker (passphrase from ``worker_secret``)."""
    from hocba.models import certificates

    key = next(
        (
            c
            for c in certificates.school_certificates(session, school_code)
            if c.status == "approved"
        ),
        None,
    )
    if key is None:
        raise SigningError(f"Trường {school_code} chưa có con dấu số được phê duyệt.")
    return open_signer(spec or SignerSpec(), key.key_ref, worker_secret(f"truong-{school_code}"))
