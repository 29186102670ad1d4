"""HMAC-signed decisions from an automation: body, timestamp and window."""

import pytest

from broker.approvals import signature
from broker.problems import Unauthenticated

KEY = b"k" * 32
BODY = b'{"verdict":"approve","approver":{"tenant_id":"t","object_id":"o"}}'


def test_signed_body_verifies_and_returns_its_single_use_id():
    header = signature.sign(KEY, BODY, timestamp=1_700_000_000)
    mac = signature.verify(KEY, header, BODY, clock=lambda: 1_700_000_010)
    assert len(mac) == 64 and header.endswith(mac)


@pytest.mark.parametrize(("header", "body", "now", "code"), [
    (signature.sign(KEY, BODY, 1_700_000_000), BODY.replace(b"approve", b"deny"), 1_700_000_000,
     "invalid_signature"),
    (signature.sign(b"other" * 8, BODY, 1_700_000_000), BODY, 1_700_000_000, "invalid_signature"),
    (signature.sign(KEY, BODY, 1_700_000_000), BODY, 1_700_000_301, "signature_expired"),
    (signature.sign(KEY, BODY, 1_700_000_400), BODY, 1_700_000_000, "signature_expired"),
    ("t=1700000000", BODY, 1_700_000_000, "invalid_signature"),
    ("garbage", BODY, 1_700_000_000, "invalid_signature"),
    ("", BODY, 1_700_000_000, "invalid_signature"),
])
def test_refusals(header, body, now, code):
    with pytest.raises(Unauthenticated) as caught:
        signature.verify(KEY, header, body, window_seconds=300, clock=lambda: now)
    assert caught.value.code == code
