"""Signing keys: the Signer port and its backends (software key, PKCS#11, remote)."""
