"""Detector case tables: every detector's docstring examples, and every miss or false alarm
found so far, run through the whole engine under both scanners."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from broker.masking import PLACEHOLDER, Masker
from broker.masking.detectors import DETECTORS

_EXAMPLE = re.compile(r"(Caught|Passed): ``(.+?)``")


def _examples() -> list[tuple[str, str, str]]:
    out = []
    for detector in DETECTORS:
        found = _EXAMPLE.findall(type(detector).__doc__ or "")
        assert {k for k, _ in found} == {"Caught", "Passed"}, f"{detector.name} needs a Caught and a Passed example"
        out += [(detector.name, kind, text) for kind, text in found]
    return out


def _types(text: str) -> list[str]:
    return sorted(m.group(0)[1:].split(":", 1)[0] for m in PLACEHOLDER.finditer(text))


@pytest.mark.parametrize(("detector", "kind", "text"), _examples(), ids=lambda x: x if len(x) < 30 else x[:30])
def test_docstring_examples(masker: Masker, detector: str, kind: str, text: str) -> None:
    from broker.masking import MaskingRules

    rules = MaskingRules(ip_addresses=True)
    masked = masker.mask_text(text, rules=rules)
    if kind == "Passed":
        assert masked == text
    else:
        assert masked != text and PLACEHOLDER.search(masked), masked


CASES: list[tuple[str, list[str]]] = [
    # the first engine's nested-placeholder bug: one span, one placeholder
    ("key: sk_live_51HqLyjWDarjtT1zdp7dc4eC39", ["stripe_key"]),
    ("secret: sk_live_51HqLyjWDarjtT1zdp7dc4eC39", ["stripe_key"]),
    ("API_TOKEN=[secret:5e4e3f]", []),  # already masked: a placeholder is never re-matched
    ("Authorization: Bearer [secret:389c47]", []),
    ("password: [password:426c23]", []),
    # references, templates and look-alikes of assignments
    ("password: ${DB_PASSWORD}", []), ("password: ********.", []), ("api_key: <your-api-key>", []),
    ("password_min_length: 12", []), ("token_type: Bearer", []), ("secretName: db-credentials", []),
    ("tokenExpirationSeconds: 3600", []), ("prompt_tokens: 1234", []), ("secret_ref: vault://kv/db", []),
    # assignments in many syntaxes
    ("DB_PASSWORD=hunter2-Blue", ["password"]), ('{"password": "hunter2"}', ["password"]),
    ('payload={\\"user\\":\\"svc\\",\\"password\\":\\"Xq9!pL\\"}', ["password"]),
    ("spring.datasource.password=Xq9pL2", ["password"]), ("X-Api-Key: 9f8e7d6c5b4a", ["secret"]),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", ["secret"]), ("--password Xq9pL2 --host db", ["password"]),
    ("ALTER ROLE app WITH LOGIN PASSWORD 'Sup3r!secret'", ["password"]),
    ("GRANT ALL ON *.* TO 'u'@'%' IDENTIFIED BY 'pw123'", ["password"]),
    ("curl -u admin:hunter2 https://api.internal", ["password"]),
    ("Driver={ODBC Driver 18};Server=x;Uid=sa;Pwd={p@ss;word};", ["password"]),
    ("Server=tcp:x.database.windows.net;User ID=app;Password=Xq9pL2;Encrypt=true", ["password"]),
    ("Data Source=x;Initial Catalog=y;User ID=z;Password=p@ss w0rd;", ["password"]),
    ('{"pass": "hunter2", "pw": "x9"}', ["password", "password"]), ("mysql -uroot -phunter2 orders", ["password"]),
    ("docker run -p 8080:80 nginx && mysql -h db -P 3306 orders", []),
    ("kubectl create secret generic db --from-literal=password=abc123", ["password"]),
    # Authorization with any scheme: the token is masked, the scheme word stays
    ("Authorization: SSWS 00aBcD3fGh1jKlMn0pQrStUvWxYz", ["secret"]), ("authorization: token 9f8e7d6c5b4a", ["secret"]),
    ("Proxy-Authorization: Negotiate YIIGhgYJKoZIhvcSAQICAQBuggZ1", ["secret"]),
    ('"Authorization": "ApiKey 9f8e7d6c5b4a3f2e"', ["secret"]),
    ("Authorization: xK9f2Lm3pQ7rS8tV1wY4zA", ["secret"]),  # no scheme word: the value is the token
    # config assignment forms
    ("TOKEN ::= Xq9pL2wE4r", ["secret"]), ("DB_PASSWORD ?= Xq9pL2wE4r", ["password"]),
    ('$password .= "Xq9pL2wE4r";', ["password"]), ('var apiKey string = "Xq9pL2wE4r"', ["secret"]),
    ("apiToken := `Xq9pL2wE4r`", ["secret"]), ("<clientSecret>Xq9pL2wE4r</clientSecret>", ["secret"]),
    ('<add key="db"/><password type="plain">Xq9pL2wE4r</password>', ["password"]),
    ('System.setProperty("api.key", "Xq9pL2wE4r");', ["secret"]),
    ("os.environ.setdefault('TOKEN', 'Xq9pL2')", ["secret"]),
    ("DEPLOY_KEY=Xk2Lm9Qp4Rs7Tv1Wx3Yz5Ab8", ["secret"]), ("SERVICE_PAT: Xk2Lm9Qp4Rs7Tv1Wx3Yz5Ab8", ["secret"]),
    ("PRIMARY_KEY=customer_id_20260101", []), ("SORT_KEY=created_at", []),
    # long values do not leak a tail; base64 user:password; a card between commas
    ('password="' + "a" * 1500 + 'Z"', ["password"]), ("password=" + "b" * 3000 + "Y", ["password"]),
    ('{"auths": {"registry.example.com": {"auth": "ZGVwbG95OlMzY3IzdC1QYXNz"}}}', ["secret"]),
    ("registry auth ZGVwbG95OlMzY3IzdC1QYXNz", ["password"]),
    ("12,4111111111111111,2026-01-01,ok", ["card"]), ("7,4111 1111 1111 1111,EUR", ["card"]),
    ("total 1,234,567,890,123,456.00", []),
    # URLs
    ("postgres://app:#390!+xC6SSz@db.internal:5432/app", ["password"]),
    ("redis://:Xq9pL2@cache:6379/0", ["password"]), ("mysql://root:p%40ss@mysql:3306/db", ["password"]),
    ("postgres://app:Xq9pL2@db.example.com/orders", ["password"]),  # not also an email
    ("https://example.com/contact?email=bob@example.com", ["email"]),
    # personal data
    ("Contact JANE.DOE@EXAMPLE.COM", ["email"]), ("mailto:jane@example.com", ["email"]),
    ("git@github.com:org/repo.git icon@2x.png lodash@4.17.21 postgres@localhost", []),
    ("+1 (415) 555-2671", ["phone"]), ("0044 20 7946 0958", ["phone"]), ("tel: 4155552671", ["phone"]),
    ("+44 20 7946 0958 2024-01-01", ["phone"]), ("06-12345678", ["phone"]),
    ("SKU 123-456-7890", []), ("build 2024.03.15-1234", []), ("10.0.19045.3930", []), ("15.03.2024", []),
    ("snowflake 1790345123456789012", []), ("ISBN 978-3-16-148410-0", []), ("epoch 1710505496123", []),
    ("4111-1111-1111-1111", ["card"]), ("3782 822463 10005", ["card"]), ("4111111111111111", ["card"]),
    ("order 4111111111111112", []), ("order 9111111111111111", []), ("1234567890123456.78", []),
    ("SSN: 536221234", ["ssn"]), ("536 22 1234", ["ssn"]), ("666-12-3456 000-12-3456 900-12-3456", []),
    ("ES36 9237 6010 3346 1950 5095", ["iban"]), ("GB82WEST12345698765432", ["iban"]),
    ("GB82WEST12345698765433", []), ("DE89 3704 0044 0532 0130 00 EUR", ["iban"]),
    ("from 203.0.113.7", []),  # IP addresses only when the rules ask
    # identifiers that must survive
    ("3f4c2a9e8b7d6c5f4e3d2c1b0a9f8e7d6c5b4a3f 123e4567-e89b-12d3-a456-426614174000", []),
    ("sha512-" + "A" * 86 + "==", []), ("AIDAJQABLZS4A3QDU576Q", []), ("pk_live_51HqLyjWDarjtT1zdp7dc4eC39", []),
    ("aGVsbG8gd29ybGQsIGhvdyBhcmUgeW91Pw==", []), ("payments-api-7d9f8b6c5-x2k9p on node-12.cluster.local", []),
    # nested: base64 of text with a secret, JSON with escapes
    ("Y29udGFjdDogamFuZUBleGFtcGxlLmNvbQo=", ["email"]),
    ('{"url": "https:\\/\\/app:Wq9xZ2pL@db.internal\\/orders"}', ["password"]),
    ('{"customer": {"email": "x", "card_last4": "4242", "card_brand": "visa"}}', ["email"]),
]


@pytest.mark.parametrize(("text", "types"), CASES, ids=lambda x: x[:40] if isinstance(x, str) else None)
def test_case_table(masker: Masker, text: str, types: list[str]) -> None:
    masked = masker.mask_text(text)
    new = Counter(_types(masked)) - Counter(_types(text))
    assert sorted(new.elements()) == sorted(types), masked
    if not types:
        assert masked == text


def test_ip_addresses_when_the_rules_ask(masker: Masker) -> None:
    from broker.masking import MaskingRules

    rules = MaskingRules(ip_addresses=True)
    masked = masker.mask_text("from 203.0.113.7 and 2001:db8::1, v1.2.3, 12:34:56", rules=rules)
    assert _types(masked) == ["ip_address", "ip_address"]
    assert masked.endswith(", v1.2.3, 12:34:56")
