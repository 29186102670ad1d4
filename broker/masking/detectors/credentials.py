"""Credentials recognised by their context: keys, tokens, ``password=`` assignments, URLs.

The examples in the docstrings are tested: ``Caught`` must come back with a placeholder of the
detector's type, ``Passed`` unchanged.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

from broker.masking.detectors.base import Detector, value_span
from broker.masking.names import classify_name
from broker.masking.placeholder import is_placeholder

_PEM_LABEL = r"-----(?:BEGIN|END) (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"


class PrivateKey(Detector):
    """PEM/OpenSSH/PGP private keys; a block cut short (no END line) is masked to its last line.

    Caught: ``-----BEGIN RSA PRIVATE KEY-----\\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn\\n-----END RSA PRIVATE KEY-----``
    Passed: ``-----BEGIN CERTIFICATE-----`` (certificates are public)
    """

    type = "private_key"
    priority = 100
    literals = (("-----BEGIN ",),)
    patterns = (
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[\s\S]{0,2000}?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        r"|(?:[A-Za-z0-9+/=:,. -]|\s|\\[nrt]){0,2000})",
    )
    triggers = (r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",)


class Jwt(Detector):
    """JSON Web Tokens (signed or not): the header must decode to JSON with ``alg``.

    Caught: ``eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U``
    Passed: ``eyJhbGciOi.notatoken``
    """

    type = "jwt"
    priority = 95
    literals = (("eyJ",),)
    patterns = (r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*",)
    triggers = (r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.",)

    def accept(self, value: str, match: re.Match[str]) -> bool:
        head = value.split(".", 1)[0]
        try:
            header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
        except (ValueError, binascii.Error):
            return False
        return isinstance(header, dict) and ("alg" in header or "enc" in header)


_UNSET = re.compile(
    r"(?i)(?:null|none|nil|true|false|undefined|empty|redacted|masked|hidden|bearer|basic|digest|negotiate|\*+|x{3,}|\.{3}|[|>?-]"
    r"|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?|\{\{.*|<[^>]*>?|%\(?[A-Za-z_]*\)?s|%[A-Za-z_]+%|:[A-Za-z_]\w*|\?)")


def is_reference(value: str) -> bool:
    """A value that stands for a secret without being one: ``${DB_PASSWORD}``, ``***``, ``null``,
    a template, a bind parameter, or a placeholder this engine made."""
    value = value.rstrip(".,:!")
    return (not value or not any(c.isalnum() for c in value) or _UNSET.fullmatch(value) is not None
            or is_placeholder(value))


class UrlPassword(Detector):
    """The password in a URL's user-info (``scheme://user:password@host``).

    Caught: ``postgres://app:Wq9-xZ2!pL@db.internal:5432/orders``
    Passed: ``postgres://app:${DB_PASSWORD}@db.internal/orders``
    """

    type = "password"
    priority = 80
    literals = (("://",),)
    anchors = ((("://",), 31),)  # after a scheme of at most 31 characters
    patterns = (r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{1,30}://[^\s:/?#@\"'<>\[\]]{0,128}:"
                r"(?P<value>[^\s/\"'<>]{1,256})@[A-Za-z0-9\[]",)

    def accept(self, value: str, match: re.Match[str]) -> bool:
        return not is_reference(value)


_KEY_STEMS = (r"pass(?:word|wd|phrase|code)?|pwd|pw|requirepass|secret|token|credential|auth|signature|sig|otp|pin"
              r"|dsn|conn(?:ection)?[_.-]?str(?:ing)?"
              r"|(?:api|access|secret|private|account|signing|encryption|master|shared|storage|license"
              r"|subscription|client|session)[_.-]?key")
_STEM_LITERALS = ("pass", "pwd", "pw", "secret", "token", "credential", "auth", "sig", "otp", "pin", "dsn", "conn",
                  "key")
"""One of these is in every match of ``_KEY_STEMS``, at most 13 characters into it."""
_VALUE = (r"(?:(?:bearer|basic|token|digest|negotiate|sharedaccesssignature)[ \t]+)?"
          r"(?:\\\"(?P<value>[^\"\\\n]+)\\\"|\"(?P<value2>(?:[^\"\\\n]|\\[^\n])+)\""
          r"|'(?P<value3>[^'\\\n]+)'|`(?P<value7>[^`\n]+)`|(?P<value4>\$\{[^}\n]{0,100}\}|\{\{[^}\n]{0,100}\}\})"
          r"|\{(?P<value5>[^{}\n]{1,256})\}|(?P<value6>[^\s\"'`,;&<>(){}\[\]]+))")
"""A value: quoted (any length: a long value must not leak its tail), backticked, a reference,
or a bare run up to the next separator."""
_OPERATOR = r"(?:::=|:=|\?=|\.=|\+=|=>|=|:)"
"""Assignment operators of config languages (Make ``?=``/``::=``, PHP ``.=``, Go ``:=``, YAML, ...)."""
_GO_TYPE = r"(?:[ \t]+(?:string|\[\]byte|str|String|var|const))?"
"""A typed declaration's type between name and operator (``var apiKey string = "..."``)."""


class SecretAssignment(Detector):
    """A value assigned to a secret-named key in config, env files, logs, JSON, YAML, headers, SQL.

    The key must be sensitive by the name rules (``names.py``); the type is the key's type
    (``password`` or ``secret``); references such as ``${VAR}`` or ``***`` are left alone.

    Also ``--password x``, SQL ``PASSWORD 'x'`` / ``IDENTIFIED BY 'x'``, ``curl -u user:x``,
    ``Password=two words;`` in connection strings and ``mysql -px``.

    Caught: ``DB_PASSWORD=hunter2-Blue``
    Passed: ``password_min_length: 12``
    """

    type = "secret"
    priority = 70
    ignore_case = True
    literals = (
        _STEM_LITERALS,
        ("--",), ("password", "identified"), ("-u", "--user"), ("password", "pwd"), ("mysql", "mariadb"),
        ("authori",), ("</",), ("(",),
    )
    # a stem's literal: the stem starts at most 40 characters into the match (41 after "<"), its
    # literal at most 13 into the stem ("subscription_key")
    anchors = ((_STEM_LITERALS, 53), None, None, None, None, None, None, (_STEM_LITERALS, 54))
    patterns = (
        r"(?<![A-Za-z0-9_.-])(?P<key>[A-Za-z0-9_.-]{0,40}(?:" + _KEY_STEMS + r")[A-Za-z0-9_.-]{0,30})"
        r"\\?[\"']?" + _GO_TYPE + r"[ \t]*" + _OPERATOR + r"[ \t]*" + _VALUE,
        # command-line flags: --password hunter2, -p is too ambiguous to take
        r"(?<![A-Za-z0-9_-])--(?P<key>[A-Za-z0-9-]{0,30}(?:password|passwd|token|secret|api-key|client-secret))"
        r"[ \t]+" + _VALUE,
        # SQL: CREATE/ALTER ROLE ... PASSWORD 'x', MySQL IDENTIFIED BY 'x'
        r"(?<![A-Za-z0-9_])(?:password|identified[ \t]+by)[ \t]+'(?P<value>[^'\n]{1,256})'",
        # curl -u user:password, --user user:password
        r"(?<![A-Za-z0-9_-])(?:-u|--user)[ \t]+[\"']?[^\s:\"']{1,64}:(?P<value>[^\s@\"']{1,256})",
        # connection strings: Password=... runs to the next ; (spaces allowed)
        r"(?<![A-Za-z0-9_])(?:password|pwd)[ \t]*=[ \t]*(?P<value>[^;\n\"'{}]{1,256})(?=;)",
        # mysql -pSECRET (the password glued to -p)
        r"(?<![A-Za-z0-9_])(?:mysql|mysqldump|mysqladmin|mariadb)[ \t][^\n]{0,200}?(?<![\w-])-p"
        r"(?P<value>[^\s\"']{1,256})",
        # Authorization: <any scheme> <token> (the scheme word stays visible)
        r"(?<![A-Za-z0-9_-])(?P<key>(?:proxy-)?authori[sz]ation)\\?[\"']?[ \t]*[:=][ \t]*\\?[\"']?"
        r"(?P<scheme>[A-Za-z][A-Za-z0-9_.~+/-]{0,300})[ \t]+(?P<value>[^\s\"',;\\]+)",
        # XML elements: <apiKey>value</apiKey>, <add key="..." value="..."/> is an attribute pair below
        r"<(?P<key>[A-Za-z0-9_.:-]{0,40}(?:" + _KEY_STEMS + r")[A-Za-z0-9_.:-]{0,30})(?:[ \t][^<>\n]{0,200})?>"
        r"(?P<value>[^<\n]+)</",
        # calls with a name and a value: setProperty("API_KEY", "v"), os.environ.setdefault('TOKEN', 'v')
        r"\([ \t]*[\"'](?P<key>[A-Za-z0-9_.-]{0,40}(?:" + _KEY_STEMS + r")[A-Za-z0-9_.-]{0,30})[\"'][ \t]*,[ \t]*"
        r"(?:\"(?P<value>[^\"\n]+)\"|'(?P<value2>[^'\n]+)')",
    )

    triggers = (  # what every match of each pattern contains, reported once per candidate
        r"(?:" + _KEY_STEMS + r")[A-Za-z0-9_.-]{0,30}\\?[\"']?" + _GO_TYPE + r"[ \t]*" + _OPERATOR,
        r"--[A-Za-z0-9-]{0,30}(?:password|passwd|token|secret|api-key|client-secret)[ \t]",
        r"(?:password|identified[ \t]+by)[ \t]+'",
        r"(?:-u|--user)[ \t]",
        r"(?:password|pwd)[ \t]*=",
        r"(?:mysql|mysqldump|mysqladmin|mariadb)[ \t]",
        # Short, over-approximating triggers: the bounded repeats of the full patterns over negated
        # classes (``[^<>\n]{0,200}``) took Hyperscan 2.5 s to compile at every cold start.
        r"authori[sz]ation\\?[\"']?[ \t]*[:=]",
        r"(?:" + _KEY_STEMS + r")[A-Za-z0-9_.:-]{0,30}(?:[ \t][^\n]*)?>[^<\n]+</",
        r"(?:" + _KEY_STEMS + r")[A-Za-z0-9_.-]{0,30}[\"'][ \t]*,[ \t]*[\"']",
    )
    _AUTH_KEY = re.compile(r"(?i)(?:proxy-)?authori[sz]ation")
    _SCHEME = re.compile(r"[A-Za-z][A-Za-z-]{0,30}")

    within_match = False  # a scheme-less Authorization value starts before the value group

    def locate(self, match: re.Match[str]) -> tuple[int, int, str] | None:
        key = match.group("key") if "key" in match.re.groupindex else None
        kind = classify_name(key) if key is not None else "password"
        if kind not in ("password", "secret", "connection_string"):
            return None
        start, end = value_span(match)
        text = match.string
        if "scheme" in match.re.groupindex:
            scheme = match.group("scheme")
            if not self._SCHEME.fullmatch(scheme):
                start = match.start("scheme")  # no scheme word: the first token is the secret
        elif key is not None and self._AUTH_KEY.fullmatch(key) and match.start("value6") >= 0 \
                and _FOLLOWED_BY_TOKEN.match(text, end):
            return None  # a scheme word: the Authorization pattern masks the token after it
        if start == end or is_reference(text[start:end]):
            return None
        return start, end, kind


_FOLLOWED_BY_TOKEN = re.compile(r"[ \t]+[^\s\"',;\\]")


class EnvKeyName(Detector):
    """An upper-case setting whose name ends in ``_KEY`` or ``_PAT`` (``DEPLOY_KEY=...``,
    ``SERVICE_PAT: ...``) with a random-looking value (digits, capitals and small letters).

    Caught: ``DEPLOY_KEY=Xk2Lm9Qp4Rs7Tv1Wx3Yz5Ab8``
    Passed: ``PRIMARY_KEY=customer_id``
    """

    type = "secret"
    priority = 70
    literals = (("_KEY", "_PAT"),)
    patterns = (r"(?<![A-Za-z0-9_])[A-Z][A-Z0-9_]{0,40}_(?:KEY|PAT)\\?[\"']?[ \t]*(?::=|\?=|=|:)[ \t]*\\?[\"'`]?"
                r"(?P<value>[A-Za-z0-9+/_.~-]{16,4096}={0,2})",)
    triggers = (r"_(?:KEY|PAT)\\?[\"']?[ \t]*(?::=|\?=|=|:)",)
    _UPPER, _LOWER, _DIGIT = re.compile(r"[A-Z]"), re.compile(r"[a-z]"), re.compile(r"\d")

    def accept(self, value: str, match: re.Match[str]) -> bool:
        return all(p.search(value) for p in (self._UPPER, self._LOWER, self._DIGIT))
