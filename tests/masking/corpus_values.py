"""Value factories for the labelled masking corpus: realistic secrets, personal data, and the
look-alikes that must survive. Deterministic: every factory takes the generator's ``Random``."""

from __future__ import annotations

import base64
import json
import random
import string
from urllib.parse import quote

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn

ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "_-"
UPPER32 = string.ascii_uppercase + "234567"
HEX = "0123456789abcdef"

FIRST = ["jane", "john", "maria", "li", "ahmed", "olga", "sven", "priya", "chen", "lucas", "amelie", "tom"]
LAST = ["doe", "smith", "garcia", "wang", "khan", "ivanova", "berg", "patel", "liu", "martin", "dubois"]
DOMAINS = ["example.com", "contoso.com", "fabrikam.co.uk", "mail.example.org", "corp.example.de", "acme.io"]


def pick(rng: random.Random, chars: str, n: int) -> str:
    return "".join(rng.choice(chars) for _ in range(n))


def mixed(rng: random.Random, n: int, chars: str = ALNUM) -> str:
    """Random token with at least one digit, capital and small letter (as real keys have)."""
    while True:
        s = pick(rng, chars, n)
        if any(c.isdigit() for c in s) and any(c.isupper() for c in s) and any(c.islower() for c in s):
            return s


# --- secrets ----------------------------------------------------------------------------------
def aws_access_key(rng: random.Random) -> str:
    return rng.choice(["AKIA", "ASIA"]) + pick(rng, UPPER32, 16)


def github_token(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return rng.choice(["ghp_", "gho_", "ghs_", "ghu_"]) + pick(rng, ALNUM, 36)
    return "github_pat_11" + pick(rng, ALNUM, 20) + "_" + pick(rng, ALNUM, 59)


def gitlab_token(rng: random.Random) -> str:
    return rng.choice(["glpat-", "gldt-", "glrt-"]) + pick(rng, URLSAFE, 20)


def slack_token(rng: random.Random) -> str:
    return (rng.choice(["xoxb-", "xoxp-"]) + pick(rng, "0123456789", 12) + "-" + pick(rng, "0123456789", 13)
            + "-" + pick(rng, ALNUM, 24))


def slack_webhook(rng: random.Random) -> str:
    return ("https://hooks.slack.com/services/T" + pick(rng, UPPER32, 8) + "/B" + pick(rng, UPPER32, 10)
            + "/" + pick(rng, ALNUM, 24))


def stripe_key(rng: random.Random) -> str:
    return rng.choice(["sk_live_", "sk_test_", "rk_live_"]) + mixed(rng, rng.choice([24, 34, 99]))


def google_api_key(rng: random.Random) -> str:
    return "AIza" + pick(rng, URLSAFE, 35)


def google_oauth_secret(rng: random.Random) -> str:
    return "GOCSPX-" + pick(rng, URLSAFE, 28) if rng.random() < 0.5 else "ya29." + pick(rng, URLSAFE, 120)


def openai_key(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return "sk-proj-" + mixed(rng, 48, URLSAFE) + mixed(rng, 60, URLSAFE)
    return "sk-" + mixed(rng, 20) + "T3BlbkFJ" + mixed(rng, 20)


def anthropic_key(rng: random.Random) -> str:
    return "sk-ant-api03-" + pick(rng, URLSAFE, 93) + "AA"


def npm_token(rng: random.Random) -> str:
    return "npm_" + pick(rng, ALNUM, 36)


def sendgrid_key(rng: random.Random) -> str:
    return "SG." + pick(rng, URLSAFE, 22) + "." + pick(rng, URLSAFE, 43)


def twilio_key(rng: random.Random) -> str:
    return "SK" + pick(rng, HEX, 32)


def azure_client_secret(rng: random.Random) -> str:
    return pick(rng, ALNUM, 3) + rng.choice("0123456789") + "Q~" + pick(rng, ALNUM + "_~.-", 34)


def azure_storage_key(rng: random.Random) -> str:
    return base64.b64encode(rng.randbytes(64)).decode()


def azure_shared_key(rng: random.Random) -> str:
    return base64.b64encode(rng.randbytes(32)).decode()


def sas_signature(rng: random.Random) -> str:
    return quote(base64.b64encode(rng.randbytes(32)).decode(), safe="")


def jwt(rng: random.Random) -> str:
    def seg(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    header = seg({"alg": rng.choice(["RS256", "HS256", "ES256"]), "typ": "JWT", "kid": pick(rng, HEX, 8)})
    payload = seg({"sub": pick(rng, HEX, 12), "iat": rng.randint(1_600_000_000, 1_800_000_000),
                   "roles": ["reader"], "tid": pick(rng, HEX, 8)})
    return f"{header}.{payload}.{pick(rng, URLSAFE, 43)}"


def private_key_lines(rng: random.Random) -> list[str]:
    label = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY",
                        "ENCRYPTED PRIVATE KEY"])
    body = base64.b64encode(rng.randbytes(rng.choice([120, 300, 900]))).decode()
    return [f"-----BEGIN {label}-----", *(body[i:i + 64] for i in range(0, len(body), 64)),
            f"-----END {label}-----"]


def password(rng: random.Random) -> str:
    words = ["Blue", "horse", "Staple", "tiger", "Quartz", "lemon", "Orbit"]
    return rng.choice([
        lambda: mixed(rng, rng.randint(10, 24), ALNUM + "!#%*-_+"),
        lambda: f"{rng.choice(words)}-{rng.choice(words)}{rng.randint(10, 99)}!",
        lambda: pick(rng, ALNUM, rng.randint(12, 32)),
    ])()


def opaque_token(rng: random.Random) -> str:
    return mixed(rng, rng.choice([32, 40, 64]), URLSAFE)


# --- personal data ----------------------------------------------------------------------------
def email(rng: random.Random) -> str:
    local = rng.choice([f"{rng.choice(FIRST)}.{rng.choice(LAST)}", f"{rng.choice(FIRST)}{rng.randint(1, 99)}",
                        f"{rng.choice(FIRST)}+{rng.choice(['billing', 'ops', 'news'])}", rng.choice(LAST)])
    return f"{local}@{rng.choice(DOMAINS)}"


_PHONE_SHAPES = [  # (region, number template with N = random digit, output format)
    ("US", "+1 NNN NNN NNNN"), ("US", "(NNN) NNN-NNNN"), ("US", "NNN-NNN-NNNN"), ("US", "NNN.NNN.NNNN"),
    ("US", "+1-NNN-NNN-NNNN"), ("US", "1-800-NNN-NNNN"),
    ("GB", "+44 20 NNNN NNNN"), ("GB", "020 NNNN NNNN"), ("GB", "+44 7NNN NNNNNN"), ("GB", "07NNN NNNNNN"),
    ("DE", "+49 30 NNNNNNNN"), ("DE", "030 NNNNNNNN"), ("DE", "+49 151 NNNNNNNN"), ("DE", "0151 NNNNNNNN"),
    ("FR", "+33 1 NN NN NN NN"), ("FR", "01 NN NN NN NN"), ("FR", "06 NN NN NN NN"),
    ("NL", "+31 20 NNN NNNN"), ("NL", "06-NNNNNNNN"), ("AU", "+61 2 NNNN NNNN"), ("AU", "(02) NNNN NNNN"),
    ("AU", "0412 NNN NNN"), ("IN", "+91 98NNN NNNNN"), ("ES", "+34 91N NNN NNN"), ("IT", "+39 06 NNNN NNNN"),
]


def phone(rng: random.Random) -> str:
    """A phone number in a common written format, valid in its numbering plan."""
    while True:
        region, shape = rng.choice(_PHONE_SHAPES)
        text = "".join(rng.choice("23456789") if c == "N" else c for c in shape)
        number = phonenumbers.parse(text, region)
        if phonenumbers.is_valid_number(number):
            return text


def phone_international(rng: random.Random) -> str:
    while True:
        text = phone(rng)
        if text.startswith("+"):
            return text


def phone_digits(rng: random.Random) -> str:
    """A US number written as bare digits (found only after a word such as ``tel:``)."""
    while True:
        text = "".join(rng.choice("23456789") for _ in range(10))
        if phonenumbers.is_valid_number(phonenumbers.parse(text, "US")):
            return text


_CARD_PREFIXES = [("4", 16), ("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15),
                  ("6011", 16), ("65", 16), ("3530", 16), ("36", 14), ("62", 16), ("4", 19)]


def card_digits(rng: random.Random) -> str:
    prefix, length = rng.choice(_CARD_PREFIXES)
    body = prefix + pick(rng, "0123456789", length - len(prefix) - 1)
    return body + luhn.calc_check_digit(body)


def card(rng: random.Random) -> str:
    digits = card_digits(rng)
    if len(digits) == 15:
        return rng.choice([f"{digits[:4]} {digits[4:10]} {digits[10:]}", digits])
    if len(digits) == 16:
        sep = rng.choice([" ", "-", ""])
        return sep.join(digits[i:i + 4] for i in range(0, 16, 4))
    return digits


def ssn(rng: random.Random) -> str:
    while True:
        area = rng.randint(1, 899)
        if area != 666:
            return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


_IBAN_BBAN = {"DE": "N" * 18, "GB": "AAAA" + "N" * 14, "FR": "N" * 23, "NL": "AAAA" + "N" * 10,
              "ES": "N" * 20, "IT": "A" + "N" * 22, "BE": "N" * 12, "CH": "N" * 17}


def iban(rng: random.Random) -> str:
    country, shape = rng.choice(list(_IBAN_BBAN.items()))
    bban = "".join(rng.choice(string.ascii_uppercase) if c == "A" else rng.choice(string.digits) for c in shape)
    number = country + stdnum_iban.calc_check_digits(country + "00" + bban) + bban
    return stdnum_iban.format(number) if rng.random() < 0.6 else number


# --- look-alikes that must survive --------------------------------------------------------------
def order_number(rng: random.Random) -> str:
    """16 digits that fail Luhn (some even start like a Visa)."""
    body = rng.choice(["4", "5", "1", "7", "9"]) + pick(rng, "0123456789", 14)
    bad = str((int(luhn.calc_check_digit(body)) + rng.randint(1, 9)) % 10)
    return body + bad


def git_sha(rng: random.Random) -> str:
    return pick(rng, HEX, rng.choice([40, 40, 12, 7]))


def uuid_text(rng: random.Random) -> str:
    h = pick(rng, HEX, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def version(rng: random.Random) -> str:
    return rng.choice([f"{rng.randint(0, 20)}.{rng.randint(0, 40)}.{rng.randint(0, 300)}",
                       f"v{rng.randint(1, 3)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}-rc{rng.randint(1, 5)}",
                       f"10.0.{rng.randint(10000, 22631)}.{rng.randint(1000, 4000)}",
                       f"{rng.randint(1, 9)}.{rng.randint(0, 9)}.{rng.randint(1000, 9999)}.{rng.randint(1000, 9999)}"])


def hostname(rng: random.Random) -> str:
    return rng.choice([f"api-{pick(rng, HEX, 4)}.prod.internal",
                       f"db{rng.randint(1, 40):02d}.eu-west-1.rds.example.com",
                       f"payments-api-{pick(rng, HEX, 9)}-{pick(rng, string.ascii_lowercase + string.digits, 5)}",
                       f"node-{rng.randint(1, 300)}.cluster.local"])


def build_number(rng: random.Random) -> str:
    return rng.choice([f"2024{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}.{rng.randint(1, 9999)}",
                       f"#{rng.randint(1000, 99999)}", f"{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
                       f"{rng.randint(100, 999)}-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}-b"])


def timestamp(rng: random.Random) -> str:
    y, mo, d = rng.randint(2019, 2026), rng.randint(1, 12), rng.randint(1, 28)
    h, mi, s = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
    return rng.choice([f"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}Z",
                       f"{y}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}.{rng.randint(0, 999):03d}",
                       str(rng.randint(1_500_000_000, 1_800_000_000)),
                       str(rng.randint(1_500_000_000_000, 1_800_000_000_000)),
                       f"{d:02d}.{mo:02d}.{y}", f"{mo:02d}/{d:02d}/{y} {h:02d}:{mi:02d}"])


def ip_address(rng: random.Random) -> str:
    return rng.choice([f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                       f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                       f"2001:db8:{pick(rng, HEX, 4)}::{rng.randint(1, 999)}"])


def sha256_hex(rng: random.Random) -> str:
    return pick(rng, HEX, 64)


def benign_base64(rng: random.Random) -> str:
    text = rng.choice(["hello world, how are you?", "replicas: 3\nimage: nginx:1.27\n", "feature-flag=on",
                       f"region=eu-west-1;tier=gold;build={rng.randint(100, 999)}"])
    return base64.b64encode(text.encode()).decode()


DECOY_FACTORIES = [order_number, git_sha, uuid_text, version, hostname, build_number, timestamp, ip_address,
                   sha256_hex, benign_base64]

FIXED_DECOYS = [
    "password_min_length: 12", "token_type: Bearer", "secretName: db-credentials", "password: ${DB_PASSWORD}",
    "password: ********", "api_key: <your-api-key>", "git@github.com:contoso/payments.git", "icon@2x.png",
    "lodash@4.17.21", "postgres@localhost", "pk_live_51HqLyjWDarjtT1zdp7dc4eC39", "sk-learn-pipeline-steps-cache",
    "ISBN 978-3-16-148410-0", "SKU 123-456-7890", "prompt_tokens: 1234", "expires_in: 3600",
    "imagePullSecrets: [regcred]", "sha512-" + "A" * 86 + "==", "-----BEGIN CERTIFICATE-----",
    "postgres://app:${DB_PASSWORD}@db.internal/orders", "tokenExpirationSeconds: 3600",
    "AIDAJQABLZS4A3QDU576Q", "x-request-id: 7f3a9c1e-22b4-4c1d-9a0e-5f6b7c8d9e0f", "card_brand: visa",
    "total 1,234,567.89 EUR", "port 5432", "job 4111 1111 1111 1112 failed",
]
