"""Known-plaintext masking (``broker.masking.known``) as a case table: each spelling a shell can give
a Secret's value, where it must vanish, and what must stay as it was."""

from __future__ import annotations

import base64
import binascii
import json
import textwrap
import urllib.parse
from collections import Counter

import pytest

from broker.masking import Masker
from broker.masking.known import KnownPlaintext, known_plaintext

MASKER = Masker(b"known-plaintext-test-key-0123456789")
PASSWORD = "S3cr3t-demo-password"
ODD = 'p@ss/w0rd "quoted" \\ & ?=+%'  # every character an encoder escapes
PEM = ("-----BEGIN PRIVATE KEY-----\n"
       + "\n".join(textwrap.wrap(base64.b64encode(bytes(range(256)) * 3).decode(), 64))
       + "\n-----END PRIVATE KEY-----\n")
LONG = "tok_" + "Zq8xW2vN" * 12  # 100 characters: base64 wraps it over two lines
SHORT, TOKEN_SIZED, TINY = "web", "k9x2mq", "ab"
VALUES = [PASSWORD, ODD, PEM, LONG, SHORT, TOKEN_SIZED, TINY]
KNOWN = KnownPlaintext(v.encode() for v in VALUES)


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def mask(text: str, *, lines: bool = True) -> tuple[str, int]:
    counts: Counter[str] = Counter()
    return KNOWN.mask_text(text, MASKER, counts, lines=lines), counts["secret"]


def wrapped(text: str, width: int) -> str:
    return "\n".join(text[i:i + width] for i in range(0, len(text), width)) + "\n"


PEM_MIDDLE = PEM.splitlines()[5]
LOWER_PLUS = "%".join(p if i == 0 else p[:2].lower() + p[2:]
                      for i, p in enumerate(urllib.parse.quote_plus(ODD, safe="").split("%")))
CAUGHT = [
    ("printenv", f"{PASSWORD}\n", PASSWORD),
    ("in prose", f"connecting with password {PASSWORD}, retrying", PASSWORD),
    ("in a URL", f"postgres://web:{PASSWORD}@db:5432/app", PASSWORD),
    ("echo | base64", b64(PASSWORD + "\n") + "\n", b64(PASSWORD + "\n")[:-4]),
    ("printf | base64 -w0", b64(PASSWORD), b64(PASSWORD)),
    ("base64 unpadded", b64(PASSWORD).rstrip("="), b64(PASSWORD).rstrip("=")),
    ("base64 url-safe", base64.urlsafe_b64encode(ODD.encode()).decode(), base64.urlsafe_b64encode(ODD.encode())
     .decode()[:-4]),
    ("base64 wrapped at 76", wrapped(b64(LONG), 76), b64(LONG)[70:82]),
    ("base64 wrapped at 76, the first line only", wrapped(b64(LONG), 76).splitlines()[0], b64(LONG)[:76]),
    ("a PEM body re-wrapped at 64", wrapped(b64(LONG), 64).splitlines()[0], b64(LONG)[:64]),
    ("xxd -p, the first line only", binascii.hexlify(LONG.encode()).decode()[:60],
     binascii.hexlify(LONG.encode()).decode()[:60]),
    ("hex", binascii.hexlify(PASSWORD.encode()).decode(), binascii.hexlify(PASSWORD.encode()).decode()),
    ("HEX", binascii.hexlify(PASSWORD.encode()).decode().upper(), binascii.hexlify(PASSWORD.encode()).decode()
     .upper()),
    ("xxd -p of a long value", wrapped(binascii.hexlify(LONG.encode()).decode(), 60),
     binascii.hexlify(LONG.encode()).decode()[50:70]),
    ("od -An -tx1", "".join(f" {b:02x}" + ("\n" if i % 16 == 15 else "") for i, b in enumerate(PASSWORD.encode())),
     " ".join(f"{b:02x}" for b in PASSWORD.encode()[:8])),
    ("URL-encoded in a log line", f"GET /login?pw={urllib.parse.quote(ODD, safe='')} 200", urllib.parse.quote(ODD,
                                                                                                                safe="")),
    ("URL-encoded, plus for space, lower-case hex", "q=" + LOWER_PLUS, LOWER_PLUS[8:]),
    ("a JSON log line", json.dumps({"level": "info", "msg": "login", "password": ODD}), json.dumps(ODD)[1:-1]),
    ("a JSON log line, ASCII-escaped", json.dumps({"pem": PEM}), json.dumps(PEM)[40:80]),
    ("a PEM key's middle line", f"loaded key line: {PEM_MIDDLE}", PEM_MIDDLE),
    ("the whole PEM", PEM, PEM_MIDDLE),
    ("reversed", PASSWORD[::-1], PASSWORD[::-1]),
    ("upper-cased", PASSWORD.upper(), PASSWORD.upper()),
    ("split by fold -w 5", wrapped(PASSWORD, 5), PASSWORD[5:10]),
    ("split by fold inside a longer line", wrapped(f"export DATABASE_PASSWORD={PASSWORD}", 7), PASSWORD[3:12]),
    ("short value alone on a line", f"user:\n  {SHORT}  \n", f"  {SHORT}  "),
    ("short value's base64 alone on a line", b64(SHORT + "\n") + "\n", b64(SHORT + "\n")),
    ("6-character value as a token", f"key={TOKEN_SIZED};", TOKEN_SIZED),
]


@pytest.mark.parametrize(("name", "text", "gone"), CAUGHT, ids=[c[0] for c in CAUGHT])
def test_each_spelling_is_masked(name: str, text: str, gone: str) -> None:
    masked, count = mask(text)
    assert gone not in masked and count >= 1
    assert "[secret:" in masked


@pytest.mark.parametrize("prefix", [b"", b"x", b"xy", b"xyz", b"0123456789abcdef" * 7 + b"!"])
@pytest.mark.parametrize("suffix", [b"", b"\n", b"tail", b"a-much-longer-tail-" * 5])
def test_a_value_inside_a_larger_base64_blob_is_found_at_every_alignment(prefix: bytes, suffix: bytes) -> None:
    blob = b64(prefix + PASSWORD.encode() + suffix)
    masked, count = mask(f"config: {blob} end")
    assert count == 1 and blob not in masked and masked.startswith("config: [secret:") and masked.endswith(" end")
    for line in wrapped(blob, 76).splitlines():  # and wrapped, as ``base64`` prints it
        assert line not in mask(wrapped(blob, 76))[0] or len(line) < 4


@pytest.mark.parametrize("text", [
    "ab abab cab about tab",  # a two-character value is never looked for
    "webhook web-6bjkbq8ttl-bxpld website cobweb web",  # a short value inside words and lines
    "the web server\n",  # ... and on a line that holds more than it
    "xk9x2mqy k9x2mq1 _k9x2mq",  # a 6-character value inside a longer word
    "id=42 uuid=9f1c2d3e-1111-2222-3333-444455556666 sha=0123456789abcdef",
    "SGVsbG8gd29ybGQ=",  # an unrelated base64
    "S3cr3t-demo-passwor",  # one character short of the value
    "",
])
def test_unrelated_text_is_unchanged(text: str) -> None:
    assert mask(text) == (text, 0)


def test_short_values_count_as_lines_of_command_output_only() -> None:
    assert mask("web\n", lines=True)[1] == 1
    assert mask("web", lines=False) == ("web", 0)  # an object's field "name: web" is not a secret


def test_every_spelling_of_a_value_gets_one_placeholder_and_values_differ() -> None:
    spellings = [PASSWORD, b64(PASSWORD), binascii.hexlify(PASSWORD.encode()).decode(), PASSWORD[::-1]]
    placeholders = {mask(s)[0] for s in spellings}
    assert len(placeholders) == 1
    assert placeholders == {MASKER.placeholder("secret", b64(PASSWORD))}  # as the Secret's own data field
    assert mask(LONG)[0] != mask(PASSWORD)[0]


def test_overlapping_values_give_one_placeholder_and_masking_twice_changes_nothing() -> None:
    text = f"{PASSWORD}{PASSWORD[::-1]} and {b64(PASSWORD)}"
    once, _ = mask(text)
    assert PASSWORD not in once and once.count("[secret:") <= 3
    assert mask(once) == (once, 0)


def test_documents_rows_and_binary_values() -> None:
    binary = bytes([0xFF, 0xFE, 0x00, 0x81]) * 4
    known = KnownPlaintext([binary, PASSWORD.encode()])
    counts: Counter[str] = Counter()
    doc = {"data": {"a": b64(binary), "b": binary.hex(), "n": 3}, "list": [f"x {PASSWORD} y"], "keep": "ok"}
    masked = known.mask_document(doc, MASKER, counts)
    assert masked["data"]["n"] == 3 and masked["keep"] == "ok"
    assert b64(binary) not in json.dumps(masked) and binary.hex() not in json.dumps(masked)
    assert PASSWORD not in json.dumps(masked) and counts["secret"] == 3
    assert known.mask_rows([["a", PASSWORD]], MASKER, counts)[0][0] == "a"


def test_no_values_no_needles_and_the_automaton_is_built_once_per_set() -> None:
    empty = KnownPlaintext([b"", b"ab"])
    assert not empty and empty.mask_text(PASSWORD, MASKER, Counter()) == PASSWORD
    assert known_plaintext(frozenset({b"x" * 10})) is known_plaintext(frozenset({b"x" * 10}))


def test_a_huge_value_is_searched_by_windows() -> None:
    huge = ("H4sIAAAAAAAA" + "abcdefghijklmnopqrstuvwxyz0123456789" * 3000)[:100_000]
    known = KnownPlaintext([huge.encode()])
    counts: Counter[str] = Counter()
    assert huge[20_000:30_000] not in known.mask_text(f"release: {huge[20_000:30_000]}", MASKER, counts)
    assert counts["secret"] >= 1
