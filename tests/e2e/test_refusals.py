"""Every refusal is precise (problem+json with a code) and nothing runs: bad tokens, bad input,
unknown targets, denied identities."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from devhost.identities import DEV_TENANT, IDENTITIES

QUERY = {"target": "demo-postgres", "sql": "SELECT id FROM customers LIMIT 1"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(stack, **overrides):
    base = stack.issuer.claims_for(IDENTITIES["devin"])
    base.update(overrides)
    return base


def assert_problem(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == code and body["status"] == status and body["detail"]
    return body


def forged_with_other_key(stack):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims(stack), other, algorithm="RS256", headers={"kid": stack.issuer.rsa_kid})


def alg_none(stack):
    header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": stack.issuer.rsa_kid}).encode())
    return f"{header}.{b64(json.dumps(claims(stack)).encode())}."


def hs256_with_public_key(stack):
    """The classic confusion attack: HMAC-sign with the issuer's public key as the secret."""
    pem = stack.issuer.rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": stack.issuer.rsa_kid}).encode())
    payload = b64(json.dumps(claims(stack)).encode())
    signature = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


def ec_key_with_rs256_header(stack):
    other = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(claims(stack), other, algorithm="ES256", headers={"kid": stack.issuer.ec_kid})


BAD_TOKENS = {
    "forged signature": forged_with_other_key,
    "expired": lambda s: s.issuer.sign(claims(s, exp=int(time.time()) - 600, iat=int(time.time()) - 4000)),
    "not yet valid": lambda s: s.issuer.sign(claims(s, nbf=int(time.time()) + 600)),
    "wrong audience": lambda s: s.issuer.sign(claims(s, aud="api://someone-else")),
    "wrong issuer": lambda s: s.issuer.sign(claims(s, iss=f"https://evil.example/{DEV_TENANT}/v2.0")),
    "other tenant": lambda s: s.issuer.sign(claims(s, iss=f"{s.issuer.authority}/other-tenant/v2.0",
                                                   tid="other-tenant")),
    "tid disagrees with issuer": lambda s: s.issuer.sign(claims(s, tid="00000000-0000-0000-0000-000000000000")),
    "no object id": lambda s: s.issuer.sign({k: v for k, v in claims(s).items() if k != "oid"}),
    "alg none": alg_none,
    "HS256 with the public key": hs256_with_public_key,
    "unknown kid": lambda s: s.issuer.sign(claims(s), kid="not-a-published-key"),
    "no kid": lambda s: jwt.encode(claims(s), s.issuer.rsa_key, algorithm="RS256"),
    "forged ES256": ec_key_with_rs256_header,
    "not a JWT": lambda s: "definitely-not-a-token",
    "truncated": lambda s: s.issuer.token("devin").rsplit(".", 1)[0],
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_bad_tokens_are_rejected_with_401(api, stack, case):
    r = api.execute(QUERY, token=BAD_TOKENS[case](stack))
    body = assert_problem(r, 401, "token_expired" if case == "expired" else "invalid_token")
    assert r.headers["www-authenticate"].startswith("Bearer ")
    assert "Traceback" not in json.dumps(body)


def test_missing_or_malformed_authorization_is_401_missing_token(api):
    assert_problem(api.execute(QUERY, identity=None), 401, "missing_token")
    assert_problem(api.execute(QUERY, identity=None, headers={"Authorization": "Basic dXNlcjpwYXNz"}),
                   401, "missing_token")


@pytest.mark.parametrize("variant", [{"version": "1.0"}, {"alg": "ES256"}])
def test_v1_issuer_format_and_es256_are_accepted(api, stack, variant):
    r = api.execute(QUERY, token=stack.token("devin", **variant))
    assert r.status_code == 200, r.text


def test_a_denied_identity_gets_403_with_a_remedy_and_the_refusal_is_journaled(api, stack):
    r = api.execute(QUERY, identity="outsider")
    body = assert_problem(r, 403, "policy_denied")
    assert body["remedy"] and body["risk"] == "read" and body["rule_id"] is None
    assert body["policy_version"].startswith("sha256:")
    from tests.e2e.test_execute import reader

    denied = [s.record for s in reader(stack).recent(limit=50) if s.record.event == "execute.denied"
              and s.record.principal["object_id"] == IDENTITIES["outsider"].object_id]
    assert denied and denied[0].outcome == {"status": "refused", "code": "policy_denied"}


def test_unknown_target_is_404_with_a_remedy(api):
    body = assert_problem(api.execute({"target": "prod-db", "sql": "SELECT 1"}), 404, "unknown_target")
    assert "prod-db" in body["detail"] and body["remedy"]


@pytest.mark.parametrize("payload, code, field", [
    ({"sql": "SELECT 1"}, "invalid_request", "target"),
    ({"target": "demo-postgres"}, "invalid_request", "body"),
    ({"target": "demo-postgres", "sql": "SELECT 1", "kubectl": ["get", "pods"]}, "invalid_request", "body"),
    ({"target": "demo-postgres", "sql": "SELECT 1", "extra": True}, "invalid_request", "extra"),
    ({"target": "demo-postgres", "sql": ""}, "invalid_request", "sql"),
    ({"target": "demo-postgres", "sql": "SELECT 1", "reason": "x" * 501}, "invalid_request", "reason"),
    ({"target": "demo-postgres", "sql": "SELECT '" + "x" * 100_001 + "'"}, "invalid_request", "sql"),
    ([QUERY], "invalid_request", "body"),
])
def test_malformed_requests_get_400_naming_the_field(api, payload, code, field):
    body = assert_problem(api.execute(payload), 400, code)
    assert any(e["field"] == field for e in body["errors"]), body


def test_kubectl_to_a_sql_target_is_refused(api):
    assert_problem(api.execute({"target": "demo-postgres", "kubectl": ["get", "pods"]}), 400,
                   "unsupported_command")


def test_body_that_is_not_json_is_400(api):
    headers = {"Authorization": f"Bearer {api.token()}", "Content-Type": "application/json"}
    r = api.http.post("/api/execute", content=b'{"target": "demo-postgres", "sql": ', headers=headers)
    assert_problem(r, 400, "invalid_json")
    r = api.http.post("/api/execute", content=b"", headers=headers)
    assert_problem(r, 400, "invalid_json")
    r = api.http.post("/api/execute", content=b"\xff\xfe", headers=headers)
    assert_problem(r, 400, "invalid_json")


def test_wrong_content_type_is_415(api):
    headers = {"Authorization": f"Bearer {api.token()}", "Content-Type": "text/plain"}
    r = api.http.post("/api/execute", content=json.dumps(QUERY).encode(), headers=headers)
    assert_problem(r, 415, "unsupported_media_type")


def test_oversized_body_is_413(api):
    big = {"target": "demo-postgres", "sql": "SELECT 1", "reason": "x" * 400_000}
    assert_problem(api.execute(big), 413, "body_too_large")


def test_execute_only_accepts_post(api):
    r = api.http.get("/api/execute")
    assert r.status_code == 405


def test_more_than_one_statement_never_runs_and_is_told_to_send_one(api, stack):
    for sql in ("SELECT 1; DELETE FROM customers", "SELECT 1;\nDELETE FROM customers;", "SELECT 1;;SELECT 2"):
        body = assert_problem(api.execute({"target": "demo-postgres", "sql": sql}), 400, "multiple_statements")
        assert body["remedy"] == "Send one statement per call."
    with stack.postgres.admin("demo") as db:
        assert db.execute("SELECT count(*) FROM customers").fetchone()[0] >= 200


@pytest.mark.parametrize("sql, position", [("SELEC * FROM customers", 0), ("SELECT * FROM customers WHERE", None),
                                           ("SELECT id FROM customers WHERE id = = 3", 36)])
def test_a_typo_is_400_invalid_sql_with_the_parsers_message_and_position(api, stack, sql, position):
    r = api.execute({"target": "demo-postgres", "sql": sql})
    body = assert_problem(r, 400, "invalid_sql")
    assert "syntax error" in body["parser_message"] and "operator" not in body["remedy"]
    assert body.get("position") == position
    from tests.e2e.test_execute import reader

    rows = [s.record for s in reader(stack).recent(limit=50)
            if s.record.event == "execute.denied" and s.record.command.get("sql") == sql]
    assert rows and rows[-1].outcome == {"status": "refused", "code": "invalid_sql"}
