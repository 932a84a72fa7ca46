"""Secret values are redacted wherever the plan writes or prints them."""

from __future__ import annotations

from roadbike.program import SECRET_SIG, SECRET_SIG_KEY
from roadbike.redact import REDACTED, redact, scrub, secret_texts


def secret(value: object) -> dict:
    return {SECRET_SIG_KEY: SECRET_SIG, "value": value}


def test_redact_replaces_nested_secrets_and_normalises_numbers() -> None:
    document = {"a": secret("hunter22"), "b": [1.0, secret({"k": "v"}), 2.5], "c": {"d": "plain"}}
    assert redact(document) == {"a": REDACTED, "b": [1, {"k": REDACTED}, 2.5], "c": {"d": "plain"}}
    assert redact(secret(["x", {"y": secret("z")}])) == [REDACTED, {"y": REDACTED}]


def test_secret_texts_and_scrub() -> None:
    document = {
        "webhook": {"secret": secret("s3cr3t-value")},
        "list": [secret(["tok-123456"])],
        "x": "s3cr3t-not",
    }
    found = secret_texts(document)
    assert found == {"s3cr3t-value", "tok-123456"}
    assert scrub("got s3cr3t-value and tok-123456", found) == f"got {REDACTED} and {REDACTED}"
