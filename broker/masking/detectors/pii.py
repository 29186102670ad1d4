"""Personal data: email addresses, phone numbers, payment cards, US SSNs, IBANs, IP addresses.

Numbers are validated by the libraries made for it (``phonenumbers``, ``python-stdnum``): a
16-digit order number that fails Luhn, a build number or a date stays as it is. The examples in
the docstrings are tested: ``Caught`` masked, ``Passed`` unchanged.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from functools import lru_cache

import phonenumbers
from stdnum import iban as _iban
from stdnum.us import ssn as _ssn

from broker.masking.detectors.base import Detector, trimmed, value_span

_FILE_TLDS = frozenset({
    "png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "css", "js", "mjs", "ts", "tsx", "jsx", "py",
    "rb", "go", "rs", "java", "json", "yaml", "yml", "txt", "md", "html", "htm", "xml", "pdf", "zip", "gz",
    "tgz", "tar", "log", "csv", "lock", "sh", "ps1", "exe", "dll", "so", "whl"
})


class Email(Detector):
    """Email addresses (``user@domain.tld``), but not URL user-info, SSH remotes or ``@2x`` assets.

    Caught: ``Contact jane.doe+billing@example.co.uk today``
    Passed: ``git@github.com:org/repo.git and icon@2x.png``
    """

    type = "email"
    priority = 55
    literals = (("@",),)
    anchors = ((("@",), 64),)  # the local part is at most 64 characters
    patterns = (r"(?<![A-Za-z0-9._%+-])(?P<value>[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"
                r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24})(?![A-Za-z0-9-])",)
    triggers = (r"[A-Za-z0-9_%+-]@[A-Za-z0-9]",)

    def accept(self, value: str, match: re.Match[str]) -> bool:
        local, _, domain = value.rpartition("@")
        if ".." in local or domain.rsplit(".", 1)[-1].lower() in _FILE_TLDS:
            return False
        text, start, end = match.string, match.start("value"), match.end("value")
        if local == "git" or (text.startswith(":", end) and end + 1 < len(text) and text[end + 1] not in " \t\n"):
            return False  # an SSH remote (git@host:org/repo), not an address
        # the user-info of a URL (scheme://user:pass@host) is not an address: its password is UrlPassword's
        scheme = text.rfind("://", max(0, start - 300), start)
        return scheme < 0 or any(c in text[scheme + 3:start] for c in "/?#=& \t\n\"'")


def _valid_phone(region: str | None, *, possible: bool = False) -> Callable[[str], bool]:
    @lru_cache(maxsize=4096)  # tables repeat their numbers (a customer's phone on every order)
    def check(candidate: str) -> bool:
        if sum(c.isdigit() for c in candidate) < 7:
            return False
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            return False
        return phonenumbers.is_possible_number(number) if possible else phonenumbers.is_valid_number(number)
    return check


TRUNK_REGIONS = ("GB", "DE", "FR", "NL", "BE", "CH", "AT", "IT", "ES", "IE", "AU", "IN", "SE", "PL")
"""Regions whose national format (with a leading 0) is recognised without a + prefix."""

_INTERNATIONAL = _valid_phone(None)
_NANP = _valid_phone("US")
_TRUNK_CODES = [(r, phonenumbers.country_code_for_region(r)) for r in TRUNK_REGIONS]


_TYPE_DESCS = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail",
               "fixed_line", "mobile")


def _desc_applies(desc: object, length: int) -> bool:
    if desc is None or not desc.national_number_pattern:  # type: ignore[attr-defined]
        return False
    lengths = desc.possible_length  # type: ignore[attr-defined]
    return not lengths or length in lengths


@lru_cache(maxsize=512)
def _plan(region: str, length: int) -> re.Pattern[str] | None:
    """One pattern for "a valid national significant number of ``length`` digits in ``region``":
    the general description's pattern (looked ahead) and any number type's, from phonenumbers'
    own metadata, with the same length rules as its ``_number_type_helper``: the verdict of
    ``is_valid_number_for_region`` in one regex call instead of up to eleven."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None or not _desc_applies(metadata.general_desc, length):
        return None
    types = [getattr(metadata, name) for name in _TYPE_DESCS
             if not (name == "mobile" and metadata.same_mobile_and_fixed_line_pattern)]
    sources = [d.national_number_pattern for d in types if _desc_applies(d, length)]
    if not sources:
        return None
    general = metadata.general_desc.national_number_pattern
    return re.compile(f"(?=(?:{general})\\Z)(?:" + "|".join(f"(?:{p})" for p in sources) + ")")


@lru_cache(maxsize=16384)
def _national_digits(digits: str) -> bool:
    """Whether ``0…`` digits are a valid national number of one of ``TRUNK_REGIONS``. Built
    from the digits directly (the trunk 0 dropped, kept for Italy) rather than parsed once per
    region, and checked against each region's plan (``_plan``): the same verdict as
    ``phonenumbers.parse`` + ``is_valid_number``, many times faster (tested against it)."""
    if not 9 <= len(digits) <= 17 or digits[0] != "0":
        return False
    if digits[1] == "0":  # an international call prefix: the regions' own parsers decide
        return any(_valid_phone(region)(digits) for region, _ in _TRUNK_CODES)
    for region, _ in _TRUNK_CODES:
        nsn = digits if region == "IT" else digits[1:]  # Italy keeps its leading zero
        plan = _plan(region, len(nsn))
        if plan is not None and plan.fullmatch(nsn):
            return True
    return False


_SEPARATORS = str.maketrans("", "", " .-()/")


def _national(candidate: str) -> bool:
    digits = candidate.translate(_SEPARATORS)
    return digits.isdigit() and _national_digits(digits)
_POSSIBLE = [_valid_phone(r, possible=True) for r in ("US", *TRUNK_REGIONS)]


class Phone(Detector):
    """Phone numbers: international (+44 20 7946 0958, 0044 20 7946 0958), North American ((415) 555-2671) and the
    national formats of ``TRUNK_REGIONS`` (020 7946 0958), each valid for its numbering plan;
    bare digits only after a word such as ``phone:``.

    Caught: ``call +44 20 7946 0958 or (415) 555-2671``
    Passed: ``build 2024.03.15-1234, version 10.0.19045.3930, order 123-456-7890``
    """

    type = "phone"
    priority = 50
    ignore_case = True
    literals = ((), (), (), ("phone", "tel", "mobile", "cell", "fax", "sms", "whatsapp"))
    patterns = (
        r"(?<![\w+])(?:\+|00)[1-9]\d{0,2}(?:[ .-]?\(?\d{1,5}\)?){2,7}(?!\w)",
        r"(?<![\w+.-])(?:1[ .-]?)?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w-]|\.\d)",
        r"(?<![\w+.-])(?:(?:\(0\d{1,4}\)[ ]?|0\d{1,4}[ .-]?)\d{2,4}[ .-]?\d{2,4}(?:[ .-]?\d{2,4}){0,2}"
        r"|0\d{1,4}/\d{5,8}(?:[ .-]?\d{2,4}){0,2})(?![\w-]|\.\d)",
        r"(?<![A-Za-z])(?:phone|tel|telephone|mobile|cell|fax|sms|whatsapp)(?:[ _-]?(?:no|nr|num|number))?\.?"
        r"[\"']?[ \t]{0,8}[:=#]?[ \t]{0,8}[\"']?(?P<value>\+?\(?\d[\d ().-]{5,18}\d)(?!\w)",
    )
    triggers = (
        r"[^\w+](?:\+|00)[1-9]\d{0,2}(?:[ .-]?\(?\d{1,5}\)?){2,7}\W",
        r"[^\w+.-](?:1[ .-]?)?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}[^\w-]",
        r"[^\w+.-](?:(?:\(0\d{1,4}\)[ ]?|0\d{1,4}[ .-]?)\d{2,4}[ .-]?\d{2,4}(?:[ .-]?\d{2,4}){0,2}"
        r"|0\d{1,4}/\d{5,8}(?:[ .-]?\d{2,4}){0,2})[^\w-]",
        r"[^A-Za-z](?:phone|tel|telephone|mobile|cell|fax|sms|whatsapp)[^\n]{0,32}\d[\d ().-]{5,18}\d\W",
    )

    def locate(self, match: re.Match[str]) -> tuple[int, int, str] | None:
        which = match.re.pattern
        if which == self.patterns[0]:
            span = trimmed(match, lambda c: _INTERNATIONAL("+" + c[2:] if c.startswith("00") else c))
        elif which == self.patterns[1]:
            span = trimmed(match, _NANP, max_trims=0)
        elif which == self.patterns[2]:
            span = trimmed(match, _national)
        else:
            span = trimmed(match, lambda c: any(v(c) for v in _POSSIBLE))
        return (*span, self.type) if span else None


_CARD_LENGTHS: list[tuple[tuple[int, int], frozenset[int]]] = [
    ((4, 4), frozenset({13, 16, 19})),                       # Visa
    ((51, 55), frozenset({16})), ((2221, 2720), frozenset({16})),  # Mastercard
    ((34, 34), frozenset({15})), ((37, 37), frozenset({15})),  # American Express
    ((6011, 6011), frozenset({16, 17, 18, 19})), ((644, 649), frozenset({16, 17, 18, 19})),
    ((65, 65), frozenset({16, 17, 18, 19})),                 # Discover
    ((62, 62), frozenset({16, 17, 18, 19})),                 # UnionPay
    ((3528, 3589), frozenset({16, 17, 18, 19})),             # JCB
    ((300, 305), frozenset({14, 15, 16, 17, 18, 19})), ((36, 36), frozenset({14, 15, 16, 17, 18, 19})),
    ((38, 39), frozenset({14, 15, 16, 17, 18, 19})),         # Diners Club
    ((2200, 2204), frozenset({16, 17, 18, 19})),             # Mir
    ((5018, 5018), frozenset(range(12, 20))), ((5020, 5020), frozenset(range(12, 20))),
    ((5038, 5038), frozenset(range(12, 20))), ((5893, 5893), frozenset(range(12, 20))),
    ((6304, 6304), frozenset(range(12, 20))), ((6759, 6759), frozenset(range(12, 20))),
    ((6761, 6763), frozenset(range(12, 20))),                # Maestro
]


_CARD_PREFIXES: dict[str, frozenset[int]] = {}
for (_low, _high), _lengths in _CARD_LENGTHS:
    for _prefix in range(_low, _high + 1):
        _CARD_PREFIXES[str(_prefix)] = _CARD_PREFIXES.get(str(_prefix), frozenset()) | _lengths
_CARD_FIRST_DIGITS = frozenset(p[0] for p in _CARD_PREFIXES)


def is_card_number(digits: str) -> bool:
    """A payment card number: a known network's prefix and length, and a valid Luhn check digit."""
    if not 12 <= len(digits) <= 19 or digits[0] not in _CARD_FIRST_DIGITS or not digits.isdigit():
        return False
    for size in (1, 2, 3, 4):
        lengths = _CARD_PREFIXES.get(digits[:size])
        if lengths is not None and len(digits) in lengths:
            return _luhn_valid(digits)
    return False


def _luhn_valid(digits: str) -> bool:
    """The Luhn check (the same verdict as ``stdnum.luhn.is_valid``, without its generality)."""
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = ord(c) - 48
        if i & 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


class Card(Detector):
    """Payment card numbers (PAN): grouped 4-4-4-4 / 4-6-5 or plain, a known network, valid Luhn.

    Caught: ``paid with 4111 1111 1111 1111``
    Passed: ``order 4111 1111 1111 1112`` (fails Luhn)
    """

    type = "card"
    priority = 60
    # every network's prefix starts with 2-6 (epoch milliseconds start with 1)
    # a comma may stand either side (a CSV line); a decimal point or a dash glued to digits may not
    patterns = (r"(?<![\w.+-])(?:[2-6]\d{3}([ -])\d{4}\1\d{4}\1\d{1,7}|[2-6]\d{3}([ -])\d{6}\2\d{4,5}"
                r"|[2-6]\d{11,18})(?!\w|[.-]\d)",)
    triggers = (r"[^\w.+-][2-6](?:\d{3}[ -]\d{4}[ -]\d{4}[ -]\d{1,7}|\d{3}[ -]\d{6}[ -]\d{4,5}|\d{11,18})\W",)

    def accept(self, value: str, match: re.Match[str]) -> bool:
        return is_card_number(value.replace(" ", "").replace("-", ""))


class Ssn(Detector):
    """US Social Security numbers with valid area, group and serial (not 000, 666, 9xx, ...);
    nine bare digits only after a word such as ``SSN:``.

    Caught: ``SSN 536-22-1234``
    Passed: ``part 666-12-3456 and 123456789``
    """

    type = "ssn"
    priority = 60
    ignore_case = True
    literals = ((), (), ("ssn", "social security"))
    patterns = (
        r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])",
        r"(?<![\w-])\d{3} \d{2} \d{4}(?![\w-]| \d)",
        r"(?<![A-Za-z])(?:ssn|social security(?: number| no\.?| #)?)[\"']?[ \t]*[:=#]?[ \t]*[\"']?"
        r"(?P<value>\d{9}|\d{3}[ -]\d{2}[ -]\d{4})(?!\d)",
    )

    def accept(self, value: str, match: re.Match[str]) -> bool:
        return _ssn.is_valid(value.replace(" ", "-") if len(value) == 11 else value)


_IBAN_SHAPE = str.maketrans("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", "n" * 10 + "a" * 26)
_IBAN_SHAPES: dict[str, bool] = {}


def _mod97(compact: str) -> bool:
    rearranged = compact[4:] + compact[:4]
    if not rearranged.isalnum() or not rearranged.isascii():
        return False
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


@lru_cache(maxsize=4096)
def _valid_iban(candidate: str) -> bool:
    """mod-97 and the country's length and format (``python-stdnum``); not the national check
    digits, which some test and legacy accounts fail: masking those too is the safe side. The
    format verdict depends only on the country and the letter/digit shape, so it is asked once
    per shape, and only for candidates that pass mod-97 (the cheap test)."""
    compact = candidate.replace(" ", "").upper()
    if len(compact) < 15 or not _mod97(compact):
        return False
    shape = compact[:2] + compact[2:].translate(_IBAN_SHAPE)
    verdict = _IBAN_SHAPES.get(shape)
    if verdict is None:
        verdict = _IBAN_SHAPES[shape] = _iban.is_valid(compact, check_country=False)
    return verdict


class Iban(Detector):
    """International bank account numbers: country format and mod-97 check.

    Caught: ``IBAN DE89 3704 0044 0532 0130 00``
    Passed: ``DE89 3704 0044 0532 0130 01`` (bad check digits)
    """

    type = "iban"
    priority = 60
    patterns = (r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])",)
    triggers = (r"[^A-Za-z0-9][A-Z]{2}\d{2} ?[A-Z0-9]{4} ?[A-Z0-9]{4}",)

    def locate(self, match: re.Match[str]) -> tuple[int, int, str] | None:
        span = trimmed(match, _valid_iban, max_trims=2)
        return (*span, self.type) if span else None


class IpAddress(Detector):
    """IPv4 and IPv6 addresses, only where the target's rules ask (``ip_addresses: true``).

    Caught: ``from 203.0.113.7``
    Passed: ``version 1.2.3`` (not an address)
    """

    type = "ip_address"
    priority = 40
    opt_in = "ip_addresses"
    patterns = (
        r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)",
        r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])",
    )
    triggers = (
        r"[^\w.](?:\d{1,3}\.){3}\d{1,3}(?:[^\w.]|\.\D)",
        r"[^\w:.](?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}[^\w:]",
    )

    def accept(self, value: str, match: re.Match[str]) -> bool:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return False
        return sum(c.isalnum() for c in value) >= 2


__all__ = ["Card", "Email", "Iban", "IpAddress", "Phone", "Ssn", "is_card_number", "value_span"]


def clear_caches() -> None:
    """Forget cached validator verdicts (benchmarks measure cold validation with this)."""
    _national_digits.cache_clear()
    _valid_iban.cache_clear()
    _IBAN_SHAPES.clear()
    for check in (_INTERNATIONAL, _NANP, *_POSSIBLE):
        check.cache_clear()  # type: ignore[attr-defined]
