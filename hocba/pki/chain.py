"""Certificate chains: "did this certificate issue that one" and the path to a trust anchor.

One answer for every place that decides whether a certificate chains to a trusted root:
the record verifier (:mod:`hocba.xml.verify`), XMLDSig and time-stamp tokens
(:mod:`hocba.xml.dsig`, :mod:`hocba.xml.timestamps`), school transfer packages
(:mod:`hocba.tasks.transfer`) and the bundled province portal (:mod:`hocba.dev.portal`).
Plain ``cryptography`` checks (RFC 5280 §6.1.3 (a)(1) name chaining and (a)(4) the
signature); validity periods, key usage and revocation stay with the callers, which each
check them at their own time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

#: Certificates looked at from the leaf up before giving up (the leaf and the
#: intermediates below a root); real Vietnamese chains are leaf ← sub-CA ← root.
MAX_CHAIN_DEPTH = 4


@lru_cache(maxsize=8192)
def issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Did ``issuer`` issue ``certificate``: its subject is the certificate's issuer name and
    its key verifies the certificate's signature. Remembered per pair (certificates are
    immutable and hashable); a damaged or unsupported signature is ``False``."""
    if certificate.issuer != issuer.subject:
        return False
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def is_ca(certificate: x509.Certificate) -> bool:
    """Does ``certificate`` say it is a CA (basicConstraints cA)?"""
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca


def valid_at(certificate: x509.Certificate, when: dt.datetime) -> bool:
    """Is ``when`` inside the certificate's validity period (bounds included)?"""
    return certificate.not_valid_before_utc <= when <= certificate.not_valid_after_utc


def build_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    max_depth: int = MAX_CHAIN_DEPTH,
) -> list[x509.Certificate] | None:
    """The path ``[leaf, intermediate..., root]`` from ``leaf`` to one of ``roots`` through
    CA certificates among ``intermediates`` (each used once), or ``None``. A leaf that is
    itself a root is ``[leaf]``. At most ``max_depth`` certificates are tried against the
    roots (the leaf and ``max_depth - 1`` intermediates); the first root that issued the
    current certificate wins."""
    if leaf in roots:
        return [leaf]
    chain = [leaf]
    for _ in range(max_depth):
        current = chain[-1]
        for root in roots:
            if issued_by(current, root):
                return [*chain, root]
        step = next(
            (c for c in intermediates if c not in chain and is_ca(c) and issued_by(current, c)),
            None,
        )
        if step is None:
            return None
        chain.append(step)
    return None
