"""A local OIDC issuer shaped like Entra ID: real RS256/ES256 tokens, JWKS over HTTP, v1 and v2
issuer formats, and the App Service managed-identity endpoint (``IDENTITY_ENDPOINT``) that
``azure-identity`` uses inside a Function app.

Routes (all on 127.0.0.1):
  GET  /{tenant}/v2.0/.well-known/openid-configuration
  GET  /common/discovery/v2.0/keys                      the JWKS
  GET  /msi/token?resource=...&api-version=2019-08-01   managed identity (X-IDENTITY-HEADER)
  POST /dev/token {"identity": "devin", ...}             dev-only: mint a token for a dev identity
"""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from devhost._http import Request, Response, StandInServer
from devhost.identities import AUDIENCE, DEV_TENANT, IDENTITIES, DevIdentity


class DevIssuer:
    """Signing keys (persisted, so tokens survive a restart) and token minting."""

    def __init__(self, base_url: str, state_dir: Path | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.rsa_kid, self.ec_kid = "dev-rsa-1", "dev-ec-1"
        keyfile = state_dir / "issuer-keys.json" if state_dir else None
        if keyfile and keyfile.exists():
            data = json.loads(keyfile.read_text())
            self.rsa_key = serialization.load_pem_private_key(data["rsa"].encode(), None)
            self.ec_key = serialization.load_pem_private_key(data["ec"].encode(), None)
            self.managed_identity_secret = data["msi"]
        else:
            self.rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.ec_key = ec.generate_private_key(ec.SECP256R1())
            self.managed_identity_secret = secrets.token_urlsafe(24)
            if keyfile:
                keyfile.parent.mkdir(parents=True, exist_ok=True)
                keyfile.write_text(json.dumps({"rsa": _pem(self.rsa_key), "ec": _pem(self.ec_key),
                                               "msi": self.managed_identity_secret}))
                keyfile.chmod(0o600)

    @property
    def authority(self) -> str:
        return self.base_url

    @property
    def v1_authority(self) -> str:
        return f"{self.base_url}/sts"

    @property
    def jwks_uri(self) -> str:
        return f"{self.base_url}/common/discovery/v2.0/keys"

    def jwks(self) -> dict[str, Any]:
        rsa_jwk = json.loads(RSAAlgorithm.to_jwk(self.rsa_key.public_key()))
        ec_jwk = json.loads(ECAlgorithm.to_jwk(self.ec_key.public_key()))
        rsa_jwk.update(kid=self.rsa_kid, use="sig", alg="RS256")
        ec_jwk.update(kid=self.ec_kid, use="sig", alg="ES256")
        return {"keys": [rsa_jwk, ec_jwk]}

    def claims_for(self, identity: DevIdentity, *, audience: str = AUDIENCE, version: str = "2.0",
                   tenant: str = DEV_TENANT, lifetime: int = 3600, now: float | None = None) -> dict[str, Any]:
        now = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "aud": audience, "iat": now, "nbf": now, "exp": now + lifetime, "tid": tenant,
            "oid": identity.object_id, "sub": f"sub-{identity.object_id[:8]}-{audience[-6:]}",
            "ver": version, "uti": uuid.uuid4().hex[:22],
        }
        if version == "2.0":
            claims["iss"] = f"{self.authority}/{tenant}/v2.0"
        else:
            claims["iss"] = f"{self.v1_authority}/{tenant}/"
        if identity.kind == "app":
            claims["idtyp"] = "app"
            claims["azp" if version == "2.0" else "appid"] = identity.app_id or identity.object_id
            claims["app_displayname"] = identity.display_name
        else:
            claims["idtyp"] = "user"
            claims["azp" if version == "2.0" else "appid"] = "dev-cli"
            claims["name"] = identity.display_name
            claims["preferred_username"] = identity.email
            claims["scp"] = "access_as_user"
        if identity.roles:
            claims["roles"] = list(identity.roles)
        if identity.groups:
            claims["groups"] = list(identity.groups)
        return claims

    def sign(self, claims: dict[str, Any], *, alg: str = "RS256", kid: str | None = None) -> str:
        key = self.rsa_key if alg == "RS256" else self.ec_key
        headers = {"kid": kid if kid is not None else (self.rsa_kid if alg == "RS256" else self.ec_kid)}
        return jwt.encode(claims, key, algorithm=alg, headers=headers)

    def token(self, identity: str = "devin", **kwargs: Any) -> str:
        alg = kwargs.pop("alg", "RS256")
        return self.sign(self.claims_for(IDENTITIES[identity], **kwargs), alg=alg)


def _pem(key: Any) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def issuer_server(state_dir: Path | None, port: int = 0, host: str = "127.0.0.1") -> tuple[StandInServer, DevIssuer]:
    """Create (not start) the issuer's HTTP server."""
    holder: dict[str, DevIssuer] = {}

    def discovery(req: Request) -> Response:
        tenant = req.match["tenant"]
        issuer = holder["issuer"]
        return Response(body={"issuer": f"{issuer.authority}/{tenant}/v2.0", "jwks_uri": issuer.jwks_uri,
                              "token_endpoint": f"{issuer.base_url}/dev/token",
                              "id_token_signing_alg_values_supported": ["RS256", "ES256"]})

    def keys(req: Request) -> Response:
        return Response(body=holder["issuer"].jwks())

    def msi(req: Request) -> Response:
        issuer = holder["issuer"]
        if req.headers.get("x-identity-header") != issuer.managed_identity_secret:
            return Response(401, {"error": "unauthorized", "error_description": "bad X-IDENTITY-HEADER"})
        resource = req.query.get("resource", "")
        if not resource:
            return Response(400, {"error": "invalid_request", "error_description": "resource is required"})
        audience = resource[: -len("/.default")] if resource.endswith("/.default") else resource
        claims = issuer.claims_for(IDENTITIES["broker"], audience=audience, version="1.0")
        return Response(body={"access_token": issuer.sign(claims), "expires_on": str(claims["exp"]),
                              "resource": audience, "token_type": "Bearer",
                              "client_id": IDENTITIES["broker"].app_id})

    def dev_token(req: Request) -> Response:
        body = req.json() or {}
        name = body.get("identity", "devin")
        if name not in IDENTITIES:
            return Response(404, {"error": f"unknown dev identity {name!r}", "known": sorted(IDENTITIES)})
        issuer = holder["issuer"]
        token = issuer.token(name, audience=body.get("audience", AUDIENCE), version=body.get("version", "2.0"),
                             lifetime=int(body.get("lifetime", 3600)), alg=body.get("alg", "RS256"))
        return Response(body={"access_token": token, "token_type": "Bearer"})

    routes = [
        ("GET", re.compile(r"/(?P<tenant>[^/]+)/v2\.0/\.well-known/openid-configuration"), discovery),
        ("GET", re.compile(r"/common/discovery/(v2\.0/)?keys"), keys),
        ("GET", re.compile(r"/msi/token/?"), msi),
        ("POST", re.compile(r"/dev/token"), dev_token),
    ]
    server = StandInServer(host, port, routes)
    holder["issuer"] = DevIssuer(server.base_url, state_dir)
    return server, holder["issuer"]
