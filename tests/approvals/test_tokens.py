"""Approval links and form nonces: what is accepted and, above all, what is refused."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from broker.approvals import ApprovalTokens
from broker.problems import BrokerError
from tests.approvals.conftest import StaticKey

RID = "6f1c2a4e-0000-4000-8000-000000000001"
ADA = "t/ada"
DIGEST = "sha256:" + "ab" * 32


def later(seconds: int = 600) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


@pytest.fixture
def tokens() -> ApprovalTokens:
    return ApprovalTokens(StaticKey("k" * 40))


def refusal(fn, *args) -> tuple[int, str]:
    with pytest.raises(BrokerError) as caught:
        fn(*args)
    return caught.value.status, caught.value.code


def test_a_link_binds_request_approver_digest_and_expiry(tokens):
    expires = later()
    claims = tokens.verify(tokens.issue(RID, ADA, "Ada", DIGEST, expires), RID)
    assert (claims.request_id, claims.approver, claims.approver_name, claims.command_digest) == (RID, ADA, "Ada",
                                                                                                 DIGEST)
    assert claims.expires_at == expires.replace(microsecond=0)
    assert claims.token_id


def test_each_link_has_its_own_id(tokens):
    a = tokens.verify(tokens.issue(RID, ADA, "Ada", DIGEST, later()), RID)
    b = tokens.verify(tokens.issue(RID, ADA, "Ada", DIGEST, later()), RID)
    assert a.token_id != b.token_id


def test_forged_with_another_key(tokens):
    forged = ApprovalTokens(StaticKey("x" * 40)).issue(RID, ADA, "Ada", DIGEST, later())
    assert refusal(tokens.verify, forged, RID) == (403, "token_invalid")


def test_altered_claims_break_the_signature(tokens):
    token = tokens.issue(RID, ADA, "Ada", DIGEST, later())
    header, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["dig"] = "sha256:" + "cd" * 32  # approve another command with the same link
    altered = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert refusal(tokens.verify, f"{header}.{altered}.{sig}", RID) == (403, "token_invalid")


def test_unsigned_and_other_algorithms_are_refused(tokens):
    claims = {"iss": "agent-access-broker", "aud": "approval-link", "sub": ADA, "name": "Ada", "rid": RID,
              "dig": DIGEST, "iat": int(time.time()), "exp": int(time.time()) + 600, "jti": "x"}
    unsigned = jwt.encode(claims, key=None, algorithm="none")
    assert refusal(tokens.verify, unsigned, RID) == (403, "token_invalid")
    assert refusal(tokens.verify, "not-a-token", RID) == (403, "token_invalid")


def test_expired_link_is_gone(tokens):
    token = tokens.issue(RID, ADA, "Ada", DIGEST, datetime.now(UTC) - timedelta(seconds=1))
    assert refusal(tokens.verify, token, RID) == (410, "token_expired")


def test_a_link_for_another_request_is_refused(tokens):
    token = tokens.issue(RID, ADA, "Ada", DIGEST, later())
    assert refusal(tokens.verify, token, RID.replace("0001", "0002")) == (403, "token_wrong_request")


def test_rotating_the_key_invalidates_open_links():
    key = StaticKey("k" * 40)
    tokens = ApprovalTokens(key)
    token = tokens.issue(RID, ADA, "Ada", DIGEST, later())
    key.secret = type(key.secret)("r" * 40, "v2")
    assert refusal(tokens.verify, token, RID) == (403, "token_invalid")


def test_a_short_key_is_refused():
    assert refusal(ApprovalTokens(StaticKey("short")).issue, RID, ADA, "Ada", DIGEST, later())[1] == "weak_signing_key"


def test_form_nonce_round_trip(tokens):
    claims = tokens.verify(tokens.issue(RID, ADA, "Ada", DIGEST, later()), RID)
    nonce = tokens.form_nonce(claims)
    tokens.check_nonce(claims, nonce, nonce)


@pytest.mark.parametrize("case", ["no-cookie", "other-cookie", "other-link", "tampered", "stale", "garbage"])
def test_form_nonce_refusals(tokens, case):
    now = [time.time()]
    tokens = ApprovalTokens(StaticKey("k" * 40), clock=lambda: now[0], form_seconds=60)
    claims = tokens.verify(tokens.issue(RID, ADA, "Ada", DIGEST, later()), RID)
    nonce = tokens.form_nonce(claims)
    cookie = nonce
    if case == "no-cookie":
        cookie = ""
    elif case == "other-cookie":
        cookie = tokens.form_nonce(claims)
    elif case == "other-link":
        claims = tokens.verify(tokens.issue(RID, ADA, "Ada", DIGEST, later()), RID)
    elif case == "tampered":
        nonce = cookie = nonce[:-2] + ("AA" if not nonce.endswith("AA") else "BB")
    elif case == "stale":
        now[0] += 61
    elif case == "garbage":
        nonce = cookie = "x.y"
    assert refusal(tokens.check_nonce, claims, nonce, cookie) == (403, "csrf_failed")
