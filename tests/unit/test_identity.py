"""Token validation rules and the JWKS cache's bounded refresh, without the HTTP stack."""

from __future__ import annotations

import pytest

from broker.identity import JwksCache, TokenValidator, principal_from_claims
from broker.problems import Unauthenticated, Unavailable
from broker.settings import Settings
from devhost.identities import AUDIENCE, DEV_TENANT, IDENTITIES
from devhost.oidc import DevIssuer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def issuer() -> DevIssuer:
    return DevIssuer("http://issuer.test")


def make_validator(issuer: DevIssuer, fetches: list[str], clock: Clock, jwks: dict | None = None) -> TokenValidator:
    def fetch(uri: str) -> dict:
        fetches.append(uri)
        return jwks if jwks is not None else issuer.jwks()

    settings = Settings(authority=issuer.authority, v1_authority=issuer.v1_authority,
                        allowed_tenants=DEV_TENANT, audiences=AUDIENCE, jwks_uri="http://issuer.test/keys")
    cache = JwksCache(settings.effective_jwks_uri, min_refresh_seconds=30, fetch=fetch, clock=clock)
    return TokenValidator(settings, cache)


def test_valid_token_maps_to_a_principal_keyed_on_tenant_and_object_id(issuer):
    v = make_validator(issuer, [], Clock())
    p = v.validate(issuer.token("devin"))
    assert p.key == f"{DEV_TENANT}/{IDENTITIES['devin'].object_id}"
    assert p.kind == "app" and p.app_id == IDENTITIES["devin"].app_id
    assert p.roles == {"Broker.Caller"} and p.groups == {"agents"}


def test_user_tokens_are_users_and_v1_tokens_use_appid(issuer):
    v = make_validator(issuer, [], Clock())
    user = v.validate(issuer.token("approver"))
    assert user.kind == "user" and user.display_name == "Ada Approver"
    v1 = v.validate(issuer.token("devin", version="1.0"))
    assert v1.app_id == IDENTITIES["devin"].app_id and v1.key.endswith(IDENTITIES["devin"].object_id)


def test_sub_is_never_the_identity():
    a = principal_from_claims({"tid": "t", "oid": "o", "sub": "one"})
    b = principal_from_claims({"tid": "t", "oid": "o", "sub": "two"})
    assert a.key == b.key == "t/o"


def test_unknown_kid_refreshes_at_most_once_per_interval(issuer):
    fetches: list[str] = []
    clock = Clock()
    v = make_validator(issuer, fetches, clock)
    v.validate(issuer.token("devin"))
    assert len(fetches) == 1
    for _ in range(50):  # a flood of tokens with random kids
        with pytest.raises(Unauthenticated):
            v.validate(issuer.sign(issuer.claims_for(IDENTITIES["devin"]), kid="random-kid"))
    assert len(fetches) == 1
    clock.now += 31
    with pytest.raises(Unauthenticated):
        v.validate(issuer.sign(issuer.claims_for(IDENTITIES["devin"]), kid="random-kid"))
    assert len(fetches) == 2


def test_a_rotated_key_is_picked_up_on_first_sight(issuer):
    fetches: list[str] = []
    clock = Clock()
    old = DevIssuer("http://issuer.test")
    keys = {"keys": old.jwks()["keys"]}
    v = make_validator(issuer, fetches, clock, jwks=keys)
    v.validate(old.token("devin"))
    clock.now += 60
    old.rsa_kid = "dev-rsa-2"  # the issuer rotated: a new kid appears in the key set
    keys["keys"] = [dict(old.jwks()["keys"][0])]
    assert v.validate(old.token("devin")).object_id == IDENTITIES["devin"].object_id
    assert len(fetches) == 2


def test_keys_keep_serving_through_an_issuer_outage_but_a_cold_cache_fails_closed(issuer):
    clock = Clock()
    state = {"up": True}

    def fetch(uri: str) -> dict:
        if not state["up"]:
            raise ValueError("down")
        return issuer.jwks()

    cache = JwksCache("http://issuer.test/keys", max_age_seconds=60, fetch=fetch, clock=clock)
    assert cache.get(issuer.rsa_kid) is not None
    state["up"] = False
    clock.now += 120  # stale, refresh fails: known keys still serve
    assert cache.get(issuer.rsa_kid) is not None
    cold = JwksCache("http://issuer.test/keys", fetch=fetch, clock=clock)
    with pytest.raises(Unavailable):
        cold.get(issuer.rsa_kid)


def test_no_configured_tenant_or_audience_refuses_everything(issuer):
    v = TokenValidator(Settings(audiences="x"), JwksCache("u", fetch=lambda u: issuer.jwks()))
    with pytest.raises(Unavailable):
        v.validate(issuer.token("devin"))


def test_keys_of_unusable_types_are_ignored(issuer):
    jwks = issuer.jwks()
    jwks["keys"].append({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"})
    cache = JwksCache("u", fetch=lambda u: jwks, clock=Clock())
    assert cache.get("hmac") is None and cache.get(issuer.rsa_kid) is not None
