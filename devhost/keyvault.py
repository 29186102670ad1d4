"""A local Key Vault (secrets only) over HTTPS, speaking the REST protocol the real
``azure-keyvault-secrets`` ``SecretClient`` speaks: the bearer challenge, token validation
(signature, audience, RBAC-like reader/writer lists), secret versions, ``{"error": ...}`` bodies.

The SDK checks that the vault's host ends with the challenge's resource host. For
``https://127.0.0.1:PORT`` we announce the resource ``https://0.0.1:PORT``, a dot-suffix of the
vault's authority, so that check passes unchanged and the product code needs no dev switch.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import jwt

from devhost._http import Request, Response, StandInServer

NAME = r"(?P<name>[0-9a-zA-Z-]{1,127})"


class SecretStoreFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.data: dict[str, list[dict[str, Any]]] = json.loads(path.read_text()) if path.exists() else {}

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data))
        tmp.chmod(0o600)
        tmp.replace(self.path)

    def set(self, name: str, value: str, content_type: str | None, tags: dict[str, str] | None) -> dict[str, Any]:
        with self._lock:
            now = int(time.time())
            entry = {"version": uuid.uuid4().hex, "value": value, "created": now, "updated": now,
                     "contentType": content_type, "tags": tags or {}}
            self.data.setdefault(name, []).append(entry)
            self._save()
            return entry

    def get(self, name: str, version: str | None) -> dict[str, Any] | None:
        versions = self.data.get(name) or []
        if not versions:
            return None
        if not version:
            return versions[-1]
        return next((v for v in versions if v["version"] == version), None)


class KeyVaultStandIn:
    def __init__(self, state_dir: Path, jwks_uri: str, authority: str, tenant: str,
                 readers: set[str], writers: set[str]) -> None:
        self.store = SecretStoreFile(state_dir / "keyvault.json")
        self._jwks = jwt.PyJWKClient(jwks_uri, cache_keys=True, lifespan=300)
        self.authority, self.tenant = authority, tenant
        self.readers, self.writers = readers, writers
        self.base_url = ""
        self.requests = 0

    @property
    def resource(self) -> str:
        port = self.base_url.rsplit(":", 1)[1]
        return f"https://0.0.1:{port}"

    def _challenge(self, message: str) -> Response:
        header = f'Bearer authorization="{self.authority}/{self.tenant}", resource="{self.resource}"'
        return Response(401, {"error": {"code": "Unauthorized", "message": message}},
                        headers={"WWW-Authenticate": header})

    def _caller(self, req: Request) -> tuple[str | None, Response | None]:
        auth = req.headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            return None, self._challenge("AKV10000: Request is missing a Bearer or PoP token.")
        token = auth[7:]
        try:
            key = self._jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(token, key.key, algorithms=["RS256", "ES256"], audience=self.resource,
                                options={"require": ["exp", "oid"]})
        except jwt.PyJWTError as exc:
            return None, self._challenge(f"AKV10032: Invalid token: {type(exc).__name__}")
        return claims["oid"], None

    def _bundle(self, name: str, entry: dict[str, Any], with_value: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": f"{self.base_url}/secrets/{name}/{entry['version']}",
            "attributes": {"enabled": True, "created": entry["created"], "updated": entry["updated"],
                           "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90},
            "tags": entry.get("tags") or {},
        }
        if entry.get("contentType"):
            body["contentType"] = entry["contentType"]
        if with_value:
            body["value"] = entry["value"]
        return body

    def get_secret(self, req: Request) -> Response:
        self.requests += 1
        oid, refusal = self._caller(req)
        if refusal:
            return refusal
        if oid not in self.readers and oid not in self.writers:
            return Response(403, {"error": {"code": "Forbidden", "message": "Caller is not authorized to "
                                            "perform action on resource (secrets/getSecret/action)."}})
        name = req.match["name"]
        entry = self.store.get(name, req.match.get("version"))
        if entry is None:
            return Response(404, {"error": {"code": "SecretNotFound",
                                            "message": f"A secret with (name/id) {name} was not found in this "
                                                       "key vault."}})
        return Response(body=self._bundle(name, entry))

    def set_secret(self, req: Request) -> Response:
        oid, refusal = self._caller(req)
        if refusal:
            return refusal
        if oid not in self.writers:
            return Response(403, {"error": {"code": "Forbidden", "message": "Caller is not authorized to "
                                            "perform action on resource (secrets/setSecret/action)."}})
        body = req.json() or {}
        if not isinstance(body.get("value"), str):
            return Response(400, {"error": {"code": "BadParameter", "message": "value is required"}})
        entry = self.store.set(req.match["name"], body["value"], body.get("contentType"), body.get("tags"))
        return Response(body=self._bundle(req.match["name"], entry))

    def list_secrets(self, req: Request) -> Response:
        oid, refusal = self._caller(req)
        if refusal:
            return refusal
        if oid not in self.readers and oid not in self.writers:
            return Response(403, {"error": {"code": "Forbidden", "message": "not authorized (secrets/list)"}})
        items = []
        for name, versions in sorted(self.store.data.items()):
            item = self._bundle(name, versions[-1], with_value=False)
            item["id"] = f"{self.base_url}/secrets/{name}"
            items.append(item)
        return Response(body={"value": items, "nextLink": None})


def keyvault_server(state_dir: Path, tls: ssl.SSLContext, *, jwks_uri: str, authority: str, tenant: str,
                    readers: set[str], writers: set[str], port: int = 0) -> tuple[StandInServer, KeyVaultStandIn]:
    vault = KeyVaultStandIn(state_dir, jwks_uri, authority, tenant, readers, writers)
    routes = [
        ("GET", re.compile(f"/secrets/{NAME}(?:/(?P<version>[0-9a-f]{{32}}))?/?"), vault.get_secret),
        ("PUT", re.compile(f"/secrets/{NAME}/?"), vault.set_secret),
        ("GET", re.compile(r"/secrets/?"), vault.list_secrets),
    ]
    server = StandInServer("127.0.0.1", port, routes, tls=tls)
    vault.base_url = server.base_url
    return server, vault
