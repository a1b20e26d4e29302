"""Signing with a USB token through the principal's own signing agent (``hocba agent``).

The token is plugged into the principal's PC, not into the server that runs the flows. So
the flow's :class:`AgentSigner` does not touch the token: it posts the batch of SHA-256
digests to the signing session (``hocba/models/signing_sessions.py``) and waits; the agent,
started by the principal with one PIN entry (:func:`run_agent`), takes the batches of its
user, signs them with :class:`~hocba.pki.pkcs11.Pkcs11Signer` (the key never
leaves the token, the PIN never leaves the agent) and posts the signature values back.
Each value is checked against the registered certificate before it is used.

The agent reaches the sessions through the app database (``HOCBA_DATABASE_URL`` of the
school's server); see docs/SIGNING.md for why and for the HTTP endpoint that would
replace it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from hocba import db
from hocba.models import certificates, signing_sessions
from hocba.pki.signer import (
    ALGORITHM_ECDSA_SHA256,
    ALGORITHM_RSA_SHA256,
    Signer,
    SigningError,
    check_returned_values,
)

_log = logging.getLogger(__name__)


class AgentSigner:
    """A :class:`~hocba.pki.signer.Signer` whose batches are signed by the user's agent.

    Args:
        session_id: the signing session whose mailbox carries the batch.
        certificate: the registered certificate of the token key.
        chain: its issuers (from the trust anchors).
        timeout: seconds to wait for the agent's answer.
        poll_interval: seconds between reads of the mailbox.
    """

    def __init__(
        self,
        session_id: int,
        certificate: x509.Certificate,
        chain: Sequence[x509.Certificate] = (),
        *,
        timeout: float = 300,
        poll_interval: float = 0.5,
    ) -> None:
        self.session_id = session_id
        self.certificate = certificate
        self.chain = list(chain)
        self.algorithm = (
            ALGORITHM_ECDSA_SHA256
            if isinstance(certificate.public_key(), ec.EllipticCurvePublicKey)
            else ALGORITHM_RSA_SHA256
        )
        self.timeout = timeout
        self.poll_interval = poll_interval

    def sign_digests(self, digests: Sequence[bytes]) -> list[bytes]:
        digests = [bytes(d) for d in digests]
        if not digests:
            return []
        until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.timeout)
        with db.session_scope() as s:
            signing_sessions.post_digests(s, self.session_id, digests, until)
        deadline = time.monotonic() + self.timeout
        while True:
            with db.session_scope() as s:
                values, error = signing_sessions.agent_reply(s, self.session_id)
            if error:
                raise SigningError(error)
            if values is not None:
                break
            if time.monotonic() > deadline:
                raise SigningError(
                    f"Quá {self.timeout:g} giây mà chương trình ký trên máy của bạn (hocba "
                    "agent) chưa ký: hãy cắm USB token, chạy `hocba agent run` và nhập mã PIN."
                )
            time.sleep(self.poll_interval)
        return check_returned_values(
            self.certificate, self.algorithm, digests, values, "USB token (hocba agent)"
        )

    def close(self) -> None:
        """Nothing to release: the token session belongs to the agent."""


def run_agent(
    username: str,
    open_token: Callable[[], Signer],
    *,
    once: bool = False,
    poll_interval: float = 1.0,
    stop_after: float | None = None,
    say: Callable[[str], None] = print,
) -> int:
    """The agent loop: open the token once (``open_token`` asks the PIN), then sign every
    batch waiting for ``username`` until interrupted; returns the number of batches signed.

    A token that cannot be opened (wrong PIN, token missing) is reported to the batches
    waiting for this user, so the page says why, and raises :class:`SigningError`. With
    ``once`` the agent stops after the first batch; ``stop_after`` bounds its life (s).
    """
    try:
        token = open_token()
    except SigningError as exc:
        with db.session_scope() as s:
            waiting = signing_sessions.agent_batches(s, username)
        for batch in waiting:
            with db.session_scope() as s:
                try:
                    signing_sessions.agent_answer(
                        s, batch.session_id, username, error=exc.message_vi
                    )
                except signing_sessions.SessionError:
                    pass  # the batch stopped waiting meanwhile (timed out)
        raise
    sha = certificates.fingerprint(token.certificate)
    say(f"Đã mở thiết bị ký của {username}; đang chờ lô cần ký (Ctrl+C để dừng).")
    signed = 0
    started = time.monotonic()
    try:
        while stop_after is None or time.monotonic() - started < stop_after:
            with db.session_scope() as s:
                batches = signing_sessions.agent_batches(s, username)
            for batch in batches:
                if batch.certificate_sha256 != sha:
                    error, values = (
                        "USB token đang cắm không chứa chứng thư số đã chọn cho phiên ký này; "
                        "hãy cắm đúng token rồi ký lại.",
                        None,
                    )
                else:
                    try:
                        values, error = token.sign_digests(batch.digests), None
                    except SigningError as exc:
                        values, error = None, exc.message_vi
                with db.session_scope() as s:
                    try:
                        signing_sessions.agent_answer(
                            s, batch.session_id, username, signatures=values, error=error
                        )
                    except signing_sessions.SessionError as exc:
                        say(str(exc))
                        continue
                say(
                    f"{batch.description}: "
                    + (f"đã ký {len(values)} giá trị băm." if values is not None else str(error))
                )
                _log.info("Agent: phiên ký #%s đã trả lời.", batch.session_id)
                signed += values is not None
                if once:
                    return signed
            time.sleep(poll_interval)
    finally:
        close = getattr(token, "close", None)
        if close is not None:
            close()
    return signed
