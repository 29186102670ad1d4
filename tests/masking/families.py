"""Generators for every secret family the engine promises to catch, written from each vendor's
published token format (prefix, length, alphabet), plus the contexts a value turns up in inside a
result cell. Nothing is copied from other projects' test files: every value is random.

``FAMILIES`` maps a family name to a factory; ``CONTEXTS`` maps a context name to a function that
embeds a value (and a name for it) in a cell text; ``look_alikes`` makes benign values that must
survive. Deterministic for a ``Random``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
from collections.abc import Callable

from tests.masking import corpus_values as v

ALNUM, HEX, URLSAFE, B64 = v.ALNUM, v.HEX, v.URLSAFE, v.B64
LOWER_HEX = HEX
DIGITS = string.digits
LOWER_ALNUM = string.ascii_lowercase + string.digits
BECH32 = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"


def _p(rng: random.Random, chars: str, n: int) -> str:
    return v.pick(rng, chars, n)


def _m(rng: random.Random, n: int, chars: str = ALNUM) -> str:
    return v.mixed(rng, n, chars)


def _uuid(rng: random.Random) -> str:
    return v.uuid_text(rng)


def _b64(rng: random.Random, n: int) -> str:
    return base64.b64encode(rng.randbytes(n)).decode()


def _sentry_org(rng: random.Random) -> str:
    claims = {"iat": rng.randint(1_700_000_000, 1_800_000_000), "url": "https://sentry.io",
              "region_url": "https://us.sentry.io", "org": rng.choice(["acme", "contoso", "fabrikam"])}
    body = base64.b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"sntrys_{body}_{_m(rng, 43, ALNUM + '+/')}"


def _op_service(rng: random.Random) -> str:
    claims = {"signInAddress": "my.1password.com", "userAuth": {"method": "SRPg-4096", "alg": "PBES2g-HS256"},
              "email": f"{_p(rng, 'abcdefghijklmnopqrstuvwxyz', 12)}@1passwordserviceaccounts.com",
              "srpX": _p(rng, HEX, 64), "muk": {"alg": "A256GCM", "kid": "mp", "k": _m(rng, 43, URLSAFE)},
              "secretKey": f"A3-{_p(rng, BECH32, 6)}-{_p(rng, BECH32, 6)}",
              "deviceUuid": _p(rng, LOWER_ALNUM, 26)}
    return "ops_" + base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")


def _op_secret_key(rng: random.Random) -> str:
    chars = string.ascii_uppercase + DIGITS
    return f"A3-{_p(rng, chars, 6)}-{_p(rng, chars, 11)}-{_p(rng, chars, 5)}-{_p(rng, chars, 5)}-{_p(rng, chars, 5)}"


def _bedrock(rng: random.Random) -> str:
    if rng.random() < 0.5:
        inner = f"BedrockAPIKey-{_p(rng, LOWER_ALNUM, 4)}-at-{rng.randint(10**11, 10**12 - 1)}:"
        return "ABSK" + base64.b64encode(inner.encode() + rng.randbytes(30)).decode()
    inner = ("bedrock.amazonaws.com/?Action=CallWithBearerToken&X-Amz-Date=20260101T000000Z"
             f"&X-Amz-Signature={_p(rng, HEX, 64)}&Version=1")
    return "bedrock-api-key-" + base64.b64encode(inner.encode()).decode()


def _telegram(rng: random.Random) -> str:
    return f"{rng.randint(10**8, 10**10 - 1)}:AA{_m(rng, 33, URLSAFE)}"


def _teams(rng: random.Random) -> str:
    tenant = rng.choice(["contoso", "fabrikam", "acme"])
    return (f"https://{tenant}.webhook.office.com/webhookb2/{_uuid(rng)}@{_uuid(rng)}/IncomingWebhook/"
            f"{_p(rng, HEX, 32)}/{_uuid(rng)}/{_m(rng, 46, URLSAFE)}")


def _discord(rng: random.Random) -> str:
    host = rng.choice(["discord.com", "discordapp.com", "ptb.discord.com"])
    return f"https://{host}/api/webhooks/{rng.randint(10**17, 10**19 - 1)}/{_m(rng, 68, URLSAFE)}"


def _slack_webhook(rng: random.Random) -> str:
    url = v.slack_webhook(rng)
    return url if rng.random() < 0.5 else url.removeprefix("https://")


def _github(rng: random.Random) -> str:
    if rng.random() < 0.3:  # server-to-server tokens of the newer, longer form carry underscores
        return "ghs_" + _m(rng, 36) + "_" + _m(rng, rng.choice([20, 60]))
    return v.github_token(rng)


def _gitlab(rng: random.Random) -> str:
    return rng.choice([
        lambda: v.gitlab_token(rng),
        lambda: "gloas-" + _p(rng, HEX, 64),
        lambda: "glffct-" + _m(rng, 20, URLSAFE),
        lambda: "glcbt-" + _p(rng, HEX, 2) + "_" + _m(rng, 20, URLSAFE),
    ])()


def _sendgrid(rng: random.Random) -> str:
    return "SG." + _m(rng, rng.choice([22, 23]), URLSAFE) + "." + _m(rng, 43, URLSAFE)


FAMILIES: dict[str, Callable[[random.Random], str]] = {
    "aws_access_key": v.aws_access_key,
    "github": _github,
    "gitlab": _gitlab,
    "slack_token": v.slack_token,
    "slack_webhook": _slack_webhook,
    "stripe": v.stripe_key,
    "google_api_key": v.google_api_key,
    "google_oauth": v.google_oauth_secret,
    "openai": v.openai_key,
    "anthropic": v.anthropic_key,
    "npm": v.npm_token,
    "sendgrid": _sendgrid,
    "twilio": v.twilio_key,
    "azure_client_secret": v.azure_client_secret,
    "azure_storage_key": v.azure_storage_key,
    "jwt": v.jwt,
    "huggingface": lambda r: r.choice(["hf_", "api_org_"]) + _p(r, string.ascii_letters, 34),
    "digitalocean": lambda r: r.choice(["dop_v1_", "doo_v1_", "dor_v1_"]) + _p(r, HEX, 64),
    "pypi": lambda r: "pypi-AgEIcHlwaS5vcmc" + _m(r, r.choice([70, 140]), URLSAFE),
    "grafana": lambda r: r.choice([
        lambda: "glsa_" + _m(r, 32) + "_" + _p(r, HEX, 8),
        lambda: "glc_" + _m(r, 80, ALNUM + "+/") + "=",
    ])(),
    "postman": lambda r: "PMAK-" + _p(r, HEX, 24) + "-" + _p(r, HEX, 34),
    "shopify": lambda r: r.choice(["shpat_", "shpca_", "shppa_", "shpss_"]) + _p(r, HEX, 32),
    "sentry": lambda r: _sentry_org(r) if r.random() < 0.5 else "sntryu_" + _p(r, HEX, 64),
    "notion": lambda r: ("ntn_" + _p(r, DIGITS, 11) + _m(r, 35)) if r.random() < 0.6 else "secret_" + _m(r, 43),
    "linear": lambda r: "lin_api_" + _m(r, 40),
    "databricks": lambda r: "dapi" + _p(r, HEX, 32) + r.choice(["", "-2", "-3"]),
    "vault": lambda r: r.choice(["hvs.", "hvb."]) + "CAES" + _m(r, r.choice([88, 130]), URLSAFE),
    "telegram_bot": _telegram,
    "teams_webhook": _teams,
    "discord_webhook": _discord,
    "onepassword": lambda r: _op_secret_key(r) if r.random() < 0.5 else _op_service(r),
    "age": lambda r: "AGE-SECRET-KEY-1" + _p(r, BECH32, 58),
    "bedrock": _bedrock,
}
"""Family -> a random, well-formed token of that family."""

NEUTRAL_NAMES = ("value", "col3", "data", "item", "text", "field")
SUGGESTIVE_NAMES = ("api_key", "GITHUB_TOKEN", "client_secret", "SERVICE_PAT", "DEPLOY_KEY", "authToken")


SCHEMES = ("Bearer", "token", "Basic", "Token", "ApiKey", "SSWS", "Key", "Splunk", "GenieKey", "Bot")


CONTEXTS: dict[str, Callable[[random.Random, str, str], str]] = {
    "bare": lambda r, name, val: val,
    "prose": lambda r, name, val: f"Hi team, the value {val} was pasted here by mistake; please rotate it.",
    "log": lambda r, name, val: f"2026-03-01T10:11:12Z WARN worker[{r.randint(1, 99)}] using {val} for upstream",
    "csv": lambda r, name, val: f"{r.randint(1, 9999)},prod,{val},2026-03-01,ok",
    "url_query": lambda r, name, val: f"GET https://api.example.com/v1/items?page=2&{name}={val}&limit=50",
    "webhook_url": lambda r, name, val: f"POST https://hooks.example.net/notify/{val} 200",
    "export": lambda r, name, val: f"export {name.upper()}={val}",
    "json": lambda r, name, val: json.dumps({"id": r.randint(1, 999), name: val, "ok": True}),
    "authorization": lambda r, name, val: f"Authorization: {r.choice(SCHEMES)} {val}",
    "assign_colon_eq": lambda r, name, val: f"{name} ::= {val}",
    "assign_question_eq": lambda r, name, val: f"{name} ?= {val}",
    "assign_dot_eq": lambda r, name, val: f"${name} .= \"{val}\";",
    "go_typed": lambda r, name, val: f"var {name} string = \"{val}\"",
    "backtick": lambda r, name, val: f"const {name} = `{val}`",
    "xml": lambda r, name, val: f"<{name}>{val}</{name}>",
    "set_property": lambda r, name, val: f"System.setProperty(\"{name}\", \"{val}\");",
}
"""Context -> embed(rng, name, value): the cell text holding the value."""


def cells(rng: random.Random, per: int = 4) -> list[tuple[str, str, str, str, str, str]]:
    """(family, context, name kind, column name, value, cell text) for every family, context and both
    kinds of name, ``per`` values each. The planted value is the family's token."""
    out = []
    for family, make in FAMILIES.items():
        for context, embed in CONTEXTS.items():
            for kind, names in (("neutral", NEUTRAL_NAMES), ("suggestive", SUGGESTIVE_NAMES)):
                for _ in range(per):
                    value = make(rng)
                    name = rng.choice(names)
                    out.append((family, context, kind, name, value, embed(rng, name, value)))
    return out


# --- benign look-alikes -------------------------------------------------------------------------
def _pod(rng: random.Random) -> str:
    pod = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' name suffix alphabet
    return f"{rng.choice(['payments', 'orders', 'web'])}-api-{_p(rng, pod, 10)}-{_p(rng, pod, 5)}"


def _image(rng: random.Random) -> str:
    return f"registry.example.com/team/app@sha256:{_p(rng, HEX, 64)}"


def _arn(rng: random.Random) -> str:
    return rng.choice([f"arn:aws:iam::{rng.randint(10**11, 10**12 - 1)}:role/{rng.choice(['deploy', 'reader'])}",
                       f"arn:aws:s3:::bucket-{_p(rng, HEX, 8)}/path/{_p(rng, HEX, 6)}",
                       f"arn:aws:lambda:eu-west-1:{rng.randint(10**11, 10**12 - 1)}:function:sync-{_p(rng, HEX, 4)}"])


def _fingerprint(rng: random.Random) -> str:
    return rng.choice([":".join(_p(rng, HEX, 2) for _ in range(16)),
                       "SHA256:" + base64.b64encode(rng.randbytes(32)).decode().rstrip("="),
                       " ".join(_p(rng, "0123456789ABCDEF", 4) for _ in range(10))])


def _b64_text(rng: random.Random) -> str:
    words = ["the", "quick", "report", "region", "replicas", "deploy", "status", "green", "build", "cache"]
    text = " ".join(rng.choice(words) for _ in range(rng.randint(4, 14)))
    return base64.b64encode(text.encode()).decode()


def _digest(rng: random.Random) -> str:
    data = rng.randbytes(16)
    return rng.choice([hashlib.md5(data, usedforsecurity=False).hexdigest(),
                       hashlib.sha1(data, usedforsecurity=False).hexdigest(),
                       "sha256:" + hashlib.sha256(data).hexdigest(),
                       "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode(),
                       "Digest: SHA-512=" + base64.b64encode(hashlib.sha512(data).digest()).decode(),
                       "sha512:" + base64.b64encode(hashlib.sha512(data).digest()).decode()])


LOOK_ALIKES: dict[str, Callable[[random.Random], str]] = {
    "git_sha": v.git_sha, "uuid": v.uuid_text, "digest": _digest, "base64_text": _b64_text, "pod": _pod,
    "image_digest": _image, "version": v.version, "order_number": v.order_number, "arn": _arn,
    "fingerprint": _fingerprint, "timestamp": v.timestamp, "hostname": v.hostname,
}


def look_alikes(rng: random.Random, n: int) -> list[tuple[str, str]]:
    """(kind, cell text) for ``n`` benign values, bare or in a short line."""
    out = []
    kinds = list(LOOK_ALIKES)
    for i in range(n):
        kind = kinds[i % len(kinds)]
        value = LOOK_ALIKES[kind](rng)
        text = rng.choice([value, f"deployed {value} ok", f"id={value}", json.dumps({"ref": value}),
                           f"{rng.randint(1, 99)},{value},done"])
        out.append((kind, text))
    return out
