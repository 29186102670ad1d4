"""A labelled, generated corpus for the masking engine: rows of realistic tables (tickets, logs,
config files, JSON events, users, payments, base64 blobs) with every planted secret or personal
value recorded as ``(type, value)``, and every look-alike recorded as a decoy that must survive.

Deterministic for a seed; nothing is stored. ``generate(3000)`` gives several thousand rows.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.masking import corpus_values as v


@dataclass(frozen=True)
class Planted:
    type: str
    value: str


@dataclass
class Row:
    table: str
    columns: list[str]
    values: list[Any]
    planted: list[Planted] = field(default_factory=list)
    decoys: list[str] = field(default_factory=list)


class _Builder:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.planted: list[Planted] = []
        self.decoys: list[str] = []

    def plant(self, kind: str, value: str) -> str:
        self.planted.append(Planted(kind, value))
        return value

    def decoy(self, value: str) -> str:
        self.decoys.append(value)
        return value

    def any_decoy(self) -> str:
        return self.decoy(self.rng.choice(v.DECOY_FACTORIES)(self.rng))

    def fixed_decoy(self) -> str:
        return self.decoy(self.rng.choice(v.FIXED_DECOYS))

    def row(self, table: str, columns: list[str], values: list[Any]) -> Row:
        return Row(table, columns, values, self.planted, self.decoys)


def _ticket(b: _Builder) -> Row:
    r = b.rng
    fragments: list[Callable[[], str]] = [
        lambda: f"Customer {r.choice(v.FIRST).title()} ({b.plant('email', v.email(r))}) called from "
                f"{b.plant('phone', v.phone(r))}.",
        lambda: f"Please refund card {b.plant('card', v.card(r))} for order {b.decoy(v.order_number(r))}.",
        lambda: f"SSN on file: {b.plant('ssn', v.ssn(r))}, verified {b.decoy(v.timestamp(r))}.",
        lambda: f"Wire to IBAN {b.plant('iban', v.iban(r))} reference {b.decoy(v.build_number(r))}.",
        lambda: f"Deployed {b.decoy(v.version(r))} to {b.decoy(v.hostname(r))} at {b.decoy(v.timestamp(r))}.",
        lambda: f"Commit {b.decoy(v.git_sha(r))} fixed request {b.decoy(v.uuid_text(r))}.",
        lambda: f"Server {b.decoy(v.ip_address(r))} answered in {r.randint(2, 900)} ms.",
        lambda: f"Note: {b.fixed_decoy()}.",
        lambda: f"Reach me at {b.plant('phone', v.phone(r))} or {b.plant('email', v.email(r))}",
    ]
    body = " ".join(r.choice(fragments)() for _ in range(r.randint(2, 5)))
    return b.row("tickets", ["id", "opened_at", "subject", "body"],
                 [r.randint(1, 10**6), b.decoy(v.timestamp(r)), "Refund request", body])


def _log(b: _Builder) -> Row:
    r = b.rng
    host = v.hostname(r)
    lines: list[Callable[[], str]] = [
        lambda: f"GET /api/v1/orders?page=2&token={b.plant('secret', v.opaque_token(r))} 200 {r.randint(1, 900)}ms",
        lambda: f"connecting to postgres://app:{b.plant('password', v.password(r))}@{b.decoy(host)}:5432/orders",
        lambda: f"outbound call Authorization: Bearer {b.plant('secret', v.opaque_token(r))}",
        lambda: f"loaded key {b.plant('aws_access_key', v.aws_access_key(r))} for bucket {b.decoy(host)}",
        lambda: f"webhook {b.plant('slack_webhook', v.slack_webhook(r))} returned 404",
        lambda: f"retrying with token {b.plant('github_token', v.github_token(r))}",
        lambda: f"user {b.plant('email', v.email(r))} logged in from {b.decoy(v.ip_address(r))}",
        lambda: f"id_token: {b.plant('jwt', v.jwt(r))}",
        lambda: f"stripe charge with key: {b.plant('stripe_key', v.stripe_key(r))} failed: card_declined",
        lambda: f"client_secret={b.plant('azure_client_secret', v.azure_client_secret(r))} tenant={v.uuid_text(r)}",
        lambda: f"env OPENAI_API_KEY={b.plant('openai_key', v.openai_key(r))}",
        lambda: f"env ANTHROPIC_API_KEY={b.plant('anthropic_key', v.anthropic_key(r))}",
        lambda: f"npm config set //registry.npmjs.org/:_authToken={b.plant('npm_token', v.npm_token(r))}",
        lambda: f"mail via {b.plant('sendgrid_key', v.sendgrid_key(r))} queued",
        lambda: f"twilio key {b.plant('twilio_key', v.twilio_key(r))} rotated",
        lambda: f"gitlab clone with {b.plant('gitlab_token', v.gitlab_token(r))}",
        lambda: f"slack post using {b.plant('slack_token', v.slack_token(r))}",
        lambda: f"maps key {b.plant('google_api_key', v.google_api_key(r))} quota 80%",
        lambda: f"oauth {b.plant('google_oauth_secret', v.google_oauth_secret(r))} refreshed",
        lambda: ("GET https://acct.blob.core.windows.net/c/b.txt?sv=2022-11-02&ss=b&srt=o&sp=r"
                 f"&se=2025-01-01T00:00:00Z&spr=https&sig={b.plant('azure_sas_signature', v.sas_signature(r))} 403"),
        lambda: f"build {b.decoy(v.build_number(r))} of {b.decoy(v.version(r))} sha {b.decoy(v.git_sha(r))}",
        lambda: f"request {b.decoy(v.uuid_text(r))} took {r.randint(1, 5000)}ms at {b.decoy(v.timestamp(r))}",
        lambda: f"config check: {b.fixed_decoy()}",
        lambda: f"digest sha256:{b.decoy(v.sha256_hex(r))} pulled",
        lambda: f"--password {b.plant('password', v.password(r))} --host {b.decoy(host)}",
        lambda: f"statement: ALTER ROLE app WITH LOGIN PASSWORD '{b.plant('password', v.password(r))}'",
        lambda: f"exec: curl -sf -u deploy:{b.plant('password', v.password(r))} https://{b.decoy(host)}/health",
        lambda: 'payload={\\"user\\":\\"svc\\",\\"password\\":\\"' + b.plant('password', v.password(r))
                + '\\"} rejected',
        lambda: f"redis://:{b.plant('password', v.password(r))}@cache.internal:6379/0 unreachable",
        lambda: (f"mongodb+srv://reporter:{b.plant('password', v.password(r).replace('#', ''))}"
                 f"@cluster0.{v.pick(r, v.HEX, 5)}.mongodb.net/sales?retryWrites=true"),
        lambda: f"X-Api-Key: {b.plant('secret', v.opaque_token(r))}",
        lambda: f"notify {b.plant('email', v.email(r).upper())} <{b.plant('email', v.email(r))}>",
        lambda: f"sms to {b.plant('phone', '00' + v.phone_international(r)[1:])} queued",
        lambda: f"tel: {b.plant('phone', v.phone_digits(r))} (callback)",
        lambda: f"snowflake id {b.decoy(str(r.randint(10**18, 2 * 10**18)))} tracked",
        lambda: f"auth_method: oauth2 token_endpoint: {b.decoy('https://login.example.com/oauth2/token')}",
        lambda: f"secret_ref: {b.decoy('vault://kv/payments/db')} mounted",
    ]
    message = r.choice(lines)()
    return b.row("app_logs", ["ts", "level", "logger", "message"],
                 [b.decoy(v.timestamp(r)), r.choice(["INFO", "WARN", "ERROR"]), "app.http", message])


def _config(b: _Builder) -> Row:
    r = b.rng
    kind = r.randrange(6)
    if kind == 0:
        text = (f"DATABASE_URL=postgres://app:{b.plant('password', v.password(r))}@db.internal:5432/app\n"
                f"REDIS_PASSWORD={b.plant('password', v.password(r))}\nAPI_KEY={b.plant('secret', v.opaque_token(r))}\n"
                f"LOG_LEVEL=info\nPORT=8080\nRELEASE={b.decoy(v.version(r))}\n")
    elif kind == 1:
        dsn = f"https://{v.pick(r, v.HEX, 32)}@o{r.randint(1000, 9999)}.ingest.sentry.io/{r.randint(10, 999)}"
        text = (f"db:\n  host: {b.decoy(v.hostname(r))}\n  user: app\n"
                f"  password: {b.plant('password', v.password(r))}\n  pool: 10\n"
                f"sentry:\n  dsn: {b.plant('connection_string', dsn)}\nimage: app:{b.decoy(v.version(r))}\n")
    elif kind == 2:
        doc = {"ConnectionStrings": {"Default": "Server=tcp:orders.database.windows.net,1433;Database=orders;"
                                                f"User ID=app;Password={b.plant('password', v.password(r))};"
                                                "Encrypt=true"},
               "Storage": "DefaultEndpointsProtocol=https;AccountName=prodstore;"
                          f"AccountKey={b.plant('azure_storage_key', v.azure_storage_key(r))};"
                          "EndpointSuffix=core.windows.net",
               "Bus": "Endpoint=sb://orders.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;"
                      f"SharedAccessKey={b.plant('azure_shared_key', v.azure_shared_key(r))}",
               "Logging": {"LogLevel": {"Default": "Information"}}, "Build": b.decoy(v.build_number(r))}
        text = json.dumps(doc, indent=2)
    elif kind == 3:
        text = (f"spring.datasource.url=jdbc:postgresql://{b.decoy(v.hostname(r))}:5432/app\n"
                f"spring.datasource.password={b.plant('password', v.password(r))}\n"
                f"server.port=8443\napp.version={b.decoy(v.version(r))}\n")
    elif kind == 4:
        lines = v.private_key_lines(r)
        text = "# deploy key\n" + b.plant("private_key", "\n".join(lines)) + "\n"
    else:
        pem = "\n".join(v.private_key_lines(r)) + "\n"
        text = (f"users:\n- name: admin\n  user:\n    client-key-data: "
                f"{b.plant('secret', base64.b64encode(pem.encode()).decode())}\n"
                f"    token: {b.plant('secret', v.opaque_token(r))}\n"
                f"clusters:\n- cluster:\n    server: https://{b.decoy(v.hostname(r))}:443\n")
    path = f"/etc/app/{r.choice(['app.env', 'config.yaml', 'appsettings.json'])}"
    return b.row("configs", ["path", "content", "updated_at"], [path, text, b.decoy(v.timestamp(r))])


def _event(b: _Builder) -> Row:
    r = b.rng
    payload = {
        "user": {"id": r.randint(1, 10**6), "email": b.plant("email", v.email(r)),
                 "phone": b.plant("phone", v.phone(r))},
        "order": {"id": b.decoy(v.order_number(r)), "amount": round(r.random() * 500, 2), "card_brand": "visa",
                  "note": f"paid with {b.plant('card', v.card(r))}"},
        "meta": {"trace": b.decoy(v.uuid_text(r)), "build": b.decoy(v.build_number(r)), "node": b.decoy(v.hostname(r))},
        "credentials": {"username": b.plant("secret", "svc-" + v.pick(r, v.HEX, 6)),
                        "password": b.plant("secret", v.password(r))},
    }
    raw = {"customer": {"ssn": b.plant("ssn", v.ssn(r).replace("-", "")), "iban": b.plant("iban", v.iban(r))},
           "integration": {"provider": "slack", "value": b.plant("slack_token", v.slack_token(r))},
           "release": b.decoy(v.version(r)), "at": b.decoy(v.timestamp(r))}
    return b.row("events", ["id", "kind", "payload", "raw"],
                 [r.randint(1, 10**9), "order.paid", payload, json.dumps(raw)])


def _user(b: _Builder) -> Row:
    r = b.rng
    return b.row("users", ["id", "email", "phone_number", "password_hash", "display_name", "created_at", "bio"],
                 [r.randint(1, 10**6), b.plant("email", v.email(r)), b.plant("phone", v.phone(r)),
                  b.plant("password", "$2b$12$" + v.pick(r, v.ALNUM + "./", 53)),
                  f"{r.choice(v.FIRST).title()} {r.choice(v.LAST).title()}", b.decoy(v.timestamp(r)),
                  f"SRE at {b.decoy(v.hostname(r))}, on call {b.decoy(v.build_number(r))}"])


def _payment(b: _Builder) -> Row:
    r = b.rng
    card_int = v.card_digits(r)
    while len(card_int) != 16:
        card_int = v.card_digits(r)
    return b.row("payments", ["id", "order_no", "ref", "card_number", "iban", "amount", "memo"],
                 [r.randint(1, 10**6), int(b.decoy(v.order_number(r))), int(b.plant("card", card_int)),
                  b.plant("card", v.card(r)), b.plant("iban", v.iban(r)), round(r.random() * 999, 2),
                  f"invoice {b.decoy(v.order_number(r))} card {b.plant('card', v.card(r))} "
                  f"to {b.plant('iban', v.iban(r))}"])


def _blob(b: _Builder) -> Row:
    r = b.rng
    inner = r.randrange(3)
    if inner == 0:
        text, kind = f"DATABASE_URL=postgres://app:{v.password(r)}@db.internal/orders\n", "password"
    elif inner == 1:
        text, kind = f"[default]\naws_access_key_id = {v.aws_access_key(r)}\nregion = eu-west-1\n", "aws_access_key"
    else:
        text, kind = f"contact: {v.email(r)}\n", "email"
    secret = b.plant(kind, base64.b64encode(text.encode()).decode())
    return b.row("blobs", ["name", "content", "checksum"],
                 [f"blob-{r.randint(1, 999)}", f"{secret} {b.decoy(v.benign_base64(r))}", b.decoy(v.sha256_hex(r))])


def _k8s(b: _Builder) -> Row:
    r = b.rng
    obj = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": b.decoy(v.hostname(r)), "uid": b.decoy(v.uuid_text(r)),
                     "annotations": {"deployment.kubernetes.io/revision": str(r.randint(1, 40)),
                                     "owner": b.plant("email", v.email(r))}},
        "spec": {"template": {"spec": {
            "serviceAccountName": "payments", "imagePullSecrets": [{"name": "regcred"}],
            "containers": [{
                "name": "api", "image": f"registry.example.com/payments@sha256:{b.decoy(v.sha256_hex(r))}",
                "env": [{"name": "DB_PASSWORD", "value": b.plant("password", v.password(r))},
                        {"name": "STRIPE_API_KEY", "value": b.plant("secret", v.stripe_key(r))},
                        {"name": "SENTRY_DSN", "value": b.plant("connection_string", "https://"
                                                                + v.pick(r, v.HEX, 32) + "@sentry.example.com/7")},
                        {"name": "LOG_LEVEL", "value": "info"},
                        {"name": "RELEASE", "value": b.decoy(v.version(r))},
                        {"name": "DB_USER", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}],
                "args": ["--token", b.plant("secret", v.opaque_token(r)), "--port", "8080"],
            }]}}},
    }
    docker_env = [f"API_TOKEN={b.plant('secret', v.opaque_token(r))}", "PATH=/usr/local/bin:/usr/bin",
                  f"BUILD={b.decoy(v.build_number(r))}"]
    return b.row("k8s_objects", ["name", "object", "env"], [obj["metadata"]["name"], obj, docker_env])


TABLES: list[tuple[Callable[[_Builder], Row], int]] = [
    (_ticket, 6), (_log, 10), (_config, 4), (_event, 3), (_user, 2), (_payment, 2), (_blob, 1), (_k8s, 1),
]


def generate(rows: int, seed: int = 6) -> list[Row]:
    rng = random.Random(seed)
    makers = [maker for maker, weight in TABLES for _ in range(weight)]
    return [rng.choice(makers)(_Builder(rng)) for _ in range(rows)]
