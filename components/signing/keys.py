"""Cosign key pairs in cosign's own format: pure functions.

`cosign generate-key-pair` writes an ECDSA P-256 key: the PKCS#8 DER of the private key encrypted with
the password (scrypt key derivation, NaCl secretbox) inside a JSON envelope, PEM-armoured as
`ENCRYPTED SIGSTORE PRIVATE KEY`; the public key as a PKIX `PUBLIC KEY` PEM. Everything random (the
private scalar, the salt, the nonce) comes from an `entropy` callable, so the same bytes give the same
key pair and the format can be checked byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

import nacl.secret
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

PRIVATE_KEY_PEM_TYPE = "ENCRYPTED SIGSTORE PRIVATE KEY"


PUBLIC_KEY_PEM_TYPE = "PUBLIC KEY"


# go-securesystemslib `encrypted`: cosign writes the "standard" parameters and reads only these three.
SCRYPT_N = 65536


SCRYPT_R = 8


SCRYPT_P = 1


ACCEPTED_SCRYPT_N = (32768, 65536, 131072)


SALT_SIZE = 32


NONCE_SIZE = nacl.secret.SecretBox.NONCE_SIZE


BOX_KEY_SIZE = nacl.secret.SecretBox.KEY_SIZE


# The offline plan's stand-in keys are never decrypted by cosign: a cheap work factor keeps plans fast.
STAND_IN_SCRYPT_N = 1024


# The order of the P-256 group; a private scalar is drawn from [1, order - 1].
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


# 64 bits more than the order's size make the reduction's bias negligible (FIPS 186-5 A.2.1).
SCALAR_ENTROPY_BYTES = 40


Entropy = Callable[[int], bytes]


class CosignKeyError(ValueError):
    """An encrypted key that is not in cosign's format, or a wrong password."""


@dataclass(frozen=True)
class CosignKeyPair:
    private_key_pem: str  # encrypted with the password
    public_key_pem: str

    @property
    def fingerprint(self) -> str:
        return public_key_fingerprint(self.public_key_pem)


def private_key_from_entropy(entropy: Entropy) -> ec.EllipticCurvePrivateKey:
    scalar = int.from_bytes(entropy(SCALAR_ENTROPY_BYTES), "big") % (P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def public_key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def public_key_fingerprint(pem: str) -> str:
    """sha256 of the public key's DER: a stable id for a key pair."""
    key = serialization.load_pem_public_key(pem.encode())
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _scrypt_key(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    # hashlib's default maxmem (32 MiB) is below what N=2^16, r=8 needs (128 * N * r = 64 MiB).
    maxmem = 128 * r * (n + p) + (64 << 20)
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=BOX_KEY_SIZE)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def envelope_json(pkcs8_der: bytes, password: bytes, salt: bytes, nonce: bytes, n: int = SCRYPT_N) -> bytes:
    """The JSON `encrypted.Encrypt` writes, field for field and in Go's order, without spaces."""
    key = _scrypt_key(password, salt, n, SCRYPT_R, SCRYPT_P)
    ciphertext = nacl.secret.SecretBox(key).encrypt(pkcs8_der, nonce).ciphertext
    document = {
        "kdf": {
            "name": "scrypt",
            "params": {"N": n, "r": SCRYPT_R, "p": SCRYPT_P},
            "salt": _b64(salt),
        },
        "cipher": {"name": "nacl/secretbox", "nonce": _b64(nonce)},
        "ciphertext": _b64(ciphertext),
    }
    return json.dumps(document, separators=(",", ":")).encode()


def pem_armour(pem_type: str, body: bytes) -> str:
    """PEM as Go's `pem.EncodeToMemory` writes it: base64 in lines of 64 characters."""
    lines = textwrap.wrap(_b64(body), 64)
    return "\n".join([f"-----BEGIN {pem_type}-----", *lines, f"-----END {pem_type}-----", ""])


def encrypt_private_key(
    key: ec.EllipticCurvePrivateKey, password: bytes, salt: bytes, nonce: bytes, n: int = SCRYPT_N
) -> str:
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem_armour(PRIVATE_KEY_PEM_TYPE, envelope_json(der, password, salt, nonce, n))


def key_pair_from_entropy(password: bytes, entropy: Entropy, n: int = SCRYPT_N) -> CosignKeyPair:
    key = private_key_from_entropy(entropy)
    salt, nonce = entropy(SALT_SIZE), entropy(NONCE_SIZE)
    return CosignKeyPair(encrypt_private_key(key, password, salt, nonce, n), public_key_pem(key))


def generate_key_pair(password: bytes) -> CosignKeyPair:
    """A new key pair as `cosign generate-key-pair` makes it (costs one scrypt at N=2^16)."""
    return key_pair_from_entropy(password, os.urandom)


def seeded_entropy(seed: str) -> Entropy:
    """Deterministic bytes from a seed (sha256 in counter mode), for reproducible stand-ins and tests."""
    state = {"counter": 0}

    def draw(size: int) -> bytes:
        out = b""
        while len(out) < size:
            out += hashlib.sha256(f"{seed}/{state['counter']}".encode()).digest()
            state["counter"] += 1
        return out[:size]

    return draw


def stand_in_key_pair(seed: str) -> CosignKeyPair:
    """A real P-256 key pair derived from `seed`, for the offline plan (cheap work factor, fixed password)."""
    return key_pair_from_entropy(b"roadbike-plan-stand-in", seeded_entropy(seed), n=STAND_IN_SCRYPT_N)


def _pem_body(pem: str, pem_type: str) -> bytes:
    begin, end = f"-----BEGIN {pem_type}-----", f"-----END {pem_type}-----"
    text = pem.strip()
    if not (text.startswith(begin) and text.endswith(end)):
        raise CosignKeyError(f"not a PEM {pem_type!r} block")
    try:
        return base64.b64decode("".join(text[len(begin) : -len(end)].split()), validate=True)
    except ValueError as exc:
        raise CosignKeyError(f"PEM body is not base64: {exc}") from None


def decrypt_private_key(pem: str, password: bytes) -> ec.EllipticCurvePrivateKey:
    """What `cosign sign --key` does with the key file and COSIGN_PASSWORD."""
    try:
        document = json.loads(_pem_body(pem, PRIVATE_KEY_PEM_TYPE))
        kdf, cipher = document["kdf"], document["cipher"]
        params = kdf["params"]
        n, r, p = int(params["N"]), int(params["r"]), int(params["p"])
        salt = base64.b64decode(kdf["salt"])
        nonce = base64.b64decode(cipher["nonce"])
        ciphertext = base64.b64decode(document["ciphertext"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CosignKeyError(f"not a cosign encrypted key envelope: {exc}") from None
    if kdf.get("name") != "scrypt" or cipher.get("name") != "nacl/secretbox":
        raise CosignKeyError("unsupported kdf or cipher (cosign uses scrypt and nacl/secretbox)")
    if n not in ACCEPTED_SCRYPT_N or (r, p) != (SCRYPT_R, SCRYPT_P):
        raise CosignKeyError(f"unsupported scrypt parameters N={n} r={r} p={p}")
    key = _scrypt_key(password, salt, n, r, p)
    try:
        der = nacl.secret.SecretBox(key).decrypt(ciphertext, nonce)
    except Exception as exc:  # nacl raises CryptoError on a wrong password or tampered data
        raise CosignKeyError("decryption failed: wrong password or damaged key") from exc
    private_key = serialization.load_der_private_key(der, password=None)
    if not isinstance(private_key, ec.EllipticCurvePrivateKey) or private_key.curve.name != "secp256r1":
        raise CosignKeyError("the decrypted key is not an ECDSA P-256 key")
    return private_key
