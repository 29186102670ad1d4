"""Entra ID's token endpoint for confidential clients, as ``azure-identity`` (MSAL) reaches it over
HTTPS: tenant discovery and the OAuth 2.0 client-credentials grant, authenticated by a client
secret or by a federated assertion (workload identity federation). Tokens are signed by the dev
issuer, so the broker validates them as it validates every dev token.

Routes (HTTPS, on 127.0.0.1):
  GET  /{tenant}/v2.0/.well-known/openid-configuration   what MSAL reads to find the token endpoint
  POST /{tenant}/oauth2/v2.0/token                       grant_type=client_credentials

As strict as Entra where it matters: an unknown tenant or client, a wrong secret, an assertion that
is unsigned, expired, for another audience or from an issuer/subject pair nobody federated, and a
scope that is not exactly one ``<resource>/.default`` of a known resource are all refused with
Entra's error names (``invalid_client``, ``invalid_scope``, ``unauthorized_client``...).
"""

from __future__ import annotations

import hmac
import re
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import jwt

from devhost._http import Request, Response, StandInServer
from devhost.identities import AUDIENCE, DEV_TENANT, IDENTITIES
from devhost.oidc import DevIssuer

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"  # what Entra requires of a federated assertion


@dataclass(frozen=True)
class AppRegistration:
    """One confidential client: the dev identity it signs in as, and how it proves it."""

    identity: str
    secret: str = ""
    federated_issuer: str = ""  # a federated identity credential: this issuer ...
    federated_subject: str = ""  # ... and this subject, audience api://AzureADTokenExchange


class EntraLogin:
    """The registrations and what was issued (tests count tokens to see renewal)."""

    def __init__(self, issuer: DevIssuer, apps: dict[str, AppRegistration], *, lifetime: int = 3600,
                 resources: tuple[str, ...] = (AUDIENCE,)) -> None:
        self.issuer, self.apps, self.lifetime, self.resources = issuer, apps, lifetime, resources
        self.issued: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def token(self, tenant: str, form: dict[str, str]) -> Response:
        if tenant != DEV_TENANT:
            return _error(400, "invalid_request", f"AADSTS90002: Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return _error(400, "unsupported_grant_type", "AADSTS70003: only client_credentials here.")
        client_id = form.get("client_id", "")
        app = self.apps.get(client_id)
        if app is None:
            return _error(400, "unauthorized_client", f"AADSTS700016: Application '{client_id}' not found.")
        refusal = self._authenticate(app, form)
        if refusal:
            return refusal
        scopes = form.get("scope", "").split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default") or scopes[0][:-9] not in self.resources:
            return _error(400, "invalid_scope", f"AADSTS70011: The provided scope '{form.get('scope', '')}' "
                          "is not valid: one <resource>/.default of a known resource.")
        claims = self.issuer.claims_for(IDENTITIES[app.identity], audience=scopes[0][:-9], lifetime=self.lifetime)
        with self._lock:
            self.issued.append({"client_id": client_id, "identity": app.identity, "exp": claims["exp"]})
        return Response(body={"token_type": "Bearer", "expires_in": self.lifetime, "ext_expires_in": self.lifetime,
                              "access_token": self.issuer.sign(claims)})

    def _authenticate(self, app: AppRegistration, form: dict[str, str]) -> Response | None:
        if "client_secret" in form:
            if app.secret and hmac.compare_digest(form["client_secret"].encode(), app.secret.encode()):
                return None
            return _error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        if form.get("client_assertion_type") == ASSERTION_TYPE and form.get("client_assertion"):
            if not app.federated_issuer:
                return _error(401, "invalid_client", "AADSTS700027: no federated credential for this client.")
            try:
                claims = jwt.decode(form["client_assertion"], self.issuer.rsa_key.public_key(), algorithms=["RS256"],
                                    audience=EXCHANGE_AUDIENCE, issuer=app.federated_issuer,
                                    options={"require": ["exp", "iss", "sub", "aud"]})
            except jwt.PyJWTError as exc:
                return _error(401, "invalid_client", f"AADSTS700024: client assertion refused: {exc}")
            if claims["sub"] != app.federated_subject:
                return _error(401, "invalid_client", "AADSTS70021: No matching federated identity record found "
                              "for the presented assertion subject.")
            return None
        return _error(401, "invalid_client", "AADSTS7000218: client_assertion or client_secret is required.")


def _error(status: int, error: str, description: str) -> Response:
    return Response(status, {"error": error, "error_description": description, "error_codes": [
        int(description[6:description.index(":")])] if description.startswith("AADSTS") else []})


def entra_login_server(issuer: DevIssuer, tls: Any, apps: dict[str, AppRegistration], *, lifetime: int = 3600,
                       port: int = 0) -> tuple[StandInServer, EntraLogin]:
    """Create (not start) the HTTPS login server; ``tls`` is the dev CA's server context."""
    holder: dict[str, Any] = {}
    login = EntraLogin(issuer, apps, lifetime=lifetime)

    def discovery(req: Request) -> Response:
        base, tenant = holder["server"].base_url, req.match["tenant"]
        if tenant != DEV_TENANT:
            return _error(400, "invalid_tenant", f"AADSTS90002: Tenant '{tenant}' not found.")
        return Response(body={"issuer": f"{issuer.authority}/{tenant}/v2.0", "jwks_uri": issuer.jwks_uri,
                              "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
                              "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
                              "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"]})

    def token(req: Request) -> Response:
        if not req.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return _error(400, "invalid_request", "AADSTS900144: the body must be form-encoded.")
        return login.token(req.match["tenant"], dict(parse_qsl(req.body.decode("utf-8", "replace"))))

    routes = [
        ("GET", re.compile(r"/(?P<tenant>[^/]+)/v2\.0/\.well-known/openid-configuration"), discovery),
        ("POST", re.compile(r"/(?P<tenant>[^/]+)/oauth2/v2\.0/token"), token),
    ]
    server = StandInServer("127.0.0.1", port, routes, tls=tls)
    holder["server"] = server
    return server, login
