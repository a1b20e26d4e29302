"""A SoftHSM2 USB token holding one person's test key and certificate, for the signing
agent's tests (``hocba agent run`` runs as a child process with ``SOFTHSM2_CONF``).

The key is the person's test PKCS#12 key imported into the token (``softhsm2-util
--import``), so that the certificate already registered for the person matches it; the
certificate is stored next to it with the same ``CKA_ID``, as a CA delivers a token. The
token is only ever loaded by child processes, never by the test process (SoftHSM reads
its configuration once per process).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
)
TOKEN = "HT-TOKEN"
KEY_LABEL = "ky-so"
PIN = "ma-pin-ht-1357"
WRONG_PIN = "0000-sai"

_STORE_CERTIFICATE = """
import sys, pkcs11
from pkcs11 import Attribute
from pkcs11.util.x509 import decode_x509_certificate
module, token, pin, label, der_path = sys.argv[1:]
template = decode_x509_certificate(open(der_path, "rb").read())
template.update({Attribute.TOKEN: True, Attribute.ID: b"\\x01", Attribute.LABEL: label})
with pkcs11.lib(module).get_token(token_label=token).open(rw=True, user_pin=pin) as s:
    s.create_object(template)
"""


def module() -> str:
    for candidate in [os.environ.get("HOCBA_TEST_PKCS11_MODULE", ""), *MODULE_CANDIDATES]:
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("SoftHSM2 is required (libsofthsm2.so not found): apt-get install softhsm2")


def token_with_key(base: Path, p12_path: str | Path, password: str) -> dict[str, str]:
    """Initialise a token in ``base`` holding the PKCS#12's key and certificate; returns
    the environment a process needs to see it (``SOFTHSM2_CONF``)."""
    util = shutil.which("softhsm2-util")
    if util is None:
        pytest.fail("softhsm2-util is required: apt-get install softhsm2")
    (base / "tokens").mkdir(parents=True)
    conf = base / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\n"
        "log.level = ERROR\nslots.removable = false\n",
        encoding="utf-8",
    )
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    key, cert, _chain = pkcs12.load_key_and_certificates(
        Path(p12_path).read_bytes(), password.encode()
    )
    assert key is not None and cert is not None
    pem = base / "key.p8.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    der = base / "cert.der"
    der.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    run = {"check": True, "capture_output": True, "timeout": 60, "env": env}
    subprocess.run(
        [util, "--init-token", "--free", "--label", TOKEN, "--pin", PIN, "--so-pin", "1234"],
        **run,  # type: ignore[call-overload]
    )
    subprocess.run(
        [util, "--import", str(pem), "--token", TOKEN, "--label", KEY_LABEL, "--id", "01"]
        + ["--pin", PIN],
        **run,  # type: ignore[call-overload]
    )
    pem.unlink()  # the key now lives on the token only
    subprocess.run(
        [sys.executable, "-c", _STORE_CERTIFICATE, module(), TOKEN, PIN, KEY_LABEL, str(der)],
        **run,  # type: ignore[call-overload]
    )
    return {"SOFTHSM2_CONF": str(conf)}


def agent(username: str, env: dict[str, str], pin: str, *extra: str) -> subprocess.Popen[bytes]:
    """``hocba agent run`` for ``username`` on the token, as the principal starts it."""
    return subprocess.Popen(
        [sys.executable, "-m", "hocba.cli", "agent", "run", "--as", username]
        + ["--pkcs11-module", module(), "--token", TOKEN, "--key-label", KEY_LABEL, *extra],
        env={**os.environ, **env, "HOCBA_TOKEN_PIN": pin},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
