"""More vendor tokens recognisable by their own shape: developer platforms, chat webhooks, vaults.

Written from each vendor's published token format (prefix, length, alphabet); the shapes are the
same ones public scanners key on, but no rule text is copied. As in ``tokens.py``, ``Caught`` in
a docstring must be masked whole and ``Passed`` left alone (tested).
"""

from __future__ import annotations

import base64
import binascii
import re

from broker.masking.detectors.base import Detector

_UPPER, _LOWER, _DIGIT = re.compile(r"[A-Z]"), re.compile(r"[a-z]"), re.compile(r"\d")


def _mixed(value: str) -> bool:
    """Random tokens have digits, capitals and small letters; words and slugs don't."""
    return bool(_UPPER.search(value) and _LOWER.search(value) and _DIGIT.search(value))


class HuggingFaceToken(Detector):
    """Hugging Face user access tokens and organisation API tokens.

    Caught: ``hf_kQpLmZrTsVwXyAbCdEfGhIjKlMnOpQrStU``
    Passed: ``hf_hub_download``
    """

    type = "huggingface_token"
    priority = 90
    literals = (("hf_", "api_org_"),)
    patterns = (r"(?<![A-Za-z0-9_])(?:hf_|api_org_)[A-Za-z]{34}(?![A-Za-z0-9_])",)


class DigitalOceanToken(Detector):
    """DigitalOcean personal access, OAuth and refresh tokens.

    Caught: ``dop_v1_4f2a9c1e22b44c1d9a0e5f6b7c8d9e0f4f2a9c1e22b44c1d9a0e5f6b7c8d9e0f``
    Passed: ``dop_v1_short``
    """

    type = "digitalocean_token"
    priority = 90
    literals = (("dop_v1_", "doo_v1_", "dor_v1_"),)
    patterns = (r"(?<![A-Za-z0-9_])do[opr]_v1_[a-f0-9]{64}(?![A-Za-z0-9_])",)


class PypiToken(Detector):
    """PyPI (and TestPyPI) upload tokens: a macaroon whose text starts with the index's name.

    Caught: ``pypi-AgEIcHlwaS5vcmcCJDk3NjYxZmVjLTBhOGUtNDZjOS1iMjA3LWI5ZmQ1NmI0ZWZmNQACKlsz``
    Passed: ``pypi-simple-index``
    """

    type = "pypi_token"
    priority = 90
    patterns = (r"(?<![A-Za-z0-9_-])pypi-(?:AgEIcHlwaS5vcmc|AgENdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{40,}",)
    triggers = (r"pypi-(?:AgEIcHlwaS5vcmc|AgENdGVzdC5weXBpLm9yZw)",)
    literals = (("pypi-AgEIcHlwaS5vcmc", "pypi-AgENdGVzdC5weXBpLm9yZw"),)


class GrafanaToken(Detector):
    """Grafana service account tokens and Grafana Cloud access policy tokens.

    Caught: ``glsa_k2Lm9Qp4Rs7Tv1Wx3Yz5Ab8Cd2Ef6GhI_0a1b2c3d``
    Passed: ``glsa_short``
    """

    type = "grafana_token"
    priority = 90
    literals = (("glsa_", "glc_"),)
    patterns = (r"(?<![A-Za-z0-9_])(?:glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|glc_[A-Za-z0-9+/]{32,400}={0,2})"
                r"(?![A-Za-z0-9_+/=])",)
    triggers = (r"glsa_[A-Za-z0-9]{32}_|glc_[A-Za-z0-9+/]{32}",)

    def accept(self, value: str, match: re.Match[str]) -> bool:
        return value.startswith("glsa_") or _mixed(value[4:])


class PostmanKey(Detector):
    """Postman API keys.

    Caught: ``PMAK-4f2a9c1e22b44c1d9a0e5f6b-7c8d9e0f4f2a9c1e22b44c1d9a0e5f6b7c``
    Passed: ``PMAK-123``
    """

    type = "postman_key"
    priority = 90
    literals = (("PMAK-",),)
    patterns = (r"(?<![A-Za-z0-9_-])PMAK-[A-Fa-f0-9]{24}-[A-Fa-f0-9]{34}(?![A-Za-z0-9_-])",)


class ShopifyToken(Detector):
    """Shopify admin access, custom app, partner and shared-secret tokens.

    Caught: ``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``
    Passed: ``shpat_short``
    """

    type = "shopify_token"
    priority = 90
    literals = (("shpat_", "shpca_", "shppa_", "shpss_"),)
    patterns = (r"(?<![A-Za-z0-9_])shp(?:at|ca|pa|ss)_[A-Fa-f0-9]{32}(?![A-Za-z0-9_])",)


class SentryToken(Detector):
    """Sentry organisation auth tokens (``sntrys_`` + base64 claims) and user auth tokens.

    Caught: ``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``
    Passed: ``sntrys_``
    """

    type = "sentry_token"
    priority = 90
    literals = (("sntrys_", "sntryu_"),)
    patterns = (r"(?<![A-Za-z0-9_])(?:sntrys_eyJ[A-Za-z0-9+/=_]{40,2000}|sntryu_[a-f0-9]{64})(?![A-Za-z0-9_+/=])",)
    triggers = (r"sntrys_eyJ[A-Za-z0-9+/=_]{40}|sntryu_[a-f0-9]{64}",)


class NotionToken(Detector):
    """Notion integration tokens (``ntn_``; the older ``secret_`` form needs a random-looking body).

    Caught: ``ntn_12345678901k2Lm9Qp4Rs7Tv1Wx3Yz5Ab8Cd2Ef6GhIj0K``
    Passed: ``secret_santa_list_for_the_office_party_2026``
    """

    type = "notion_token"
    priority = 85
    literals = (("ntn_", "secret_"),)
    patterns = (r"(?<![A-Za-z0-9_])(?:ntn_\d{11}[A-Za-z0-9]{35}|secret_[A-Za-z0-9]{43})(?![A-Za-z0-9_])",)

    def accept(self, value: str, match: re.Match[str]) -> bool:
        return _mixed(value[4:] if value.startswith("ntn_") else value[7:])


class LinearKey(Detector):
    """Linear API keys.

    Caught: ``lin_api_k2Lm9Qp4Rs7Tv1Wx3Yz5Ab8Cd2Ef6GhIj0KlMnOp``
    Passed: ``lin_api_docs``
    """

    type = "linear_key"
    priority = 90
    literals = (("lin_api_",),)
    patterns = (r"(?<![A-Za-z0-9_])lin_api_[A-Za-z0-9]{40}(?![A-Za-z0-9_])",)


class DatabricksToken(Detector):
    """Databricks personal access tokens.

    Caught: ``dapi4f2a9c1e22b44c1d9a0e5f6b7c8d9e0f-2``
    Passed: ``dapi_client``
    """

    type = "databricks_token"
    priority = 90
    literals = (("dapi",),)
    patterns = (r"(?<![A-Za-z0-9_-])dapi[a-f0-9]{32}(?:-\d)?(?![A-Za-z0-9_-])",)


class VaultToken(Detector):
    """HashiCorp Vault service and batch tokens (``hvs.``, ``hvb.``).

    Caught: ``hvs.CAESIk2Lm9Qp4Rs7Tv1Wx3Yz5Ab8Cd2Ef6GhIj0KlMnOpQ1k2Lm9Qp4Rs7Tv1Wx3Yz5Ab8Cd2Ef6GhIj0KlMnOpQ1abcdefghij``
    Passed: ``hvs.example``
    """

    type = "vault_token"
    priority = 90
    literals = (("hvs.", "hvb."),)
    patterns = (r"(?<![A-Za-z0-9_.-])hv[sb]\.[A-Za-z0-9_-]{90,400}(?![A-Za-z0-9_-])",)
    triggers = (r"hv[sb]\.[A-Za-z0-9_-]{90}",)


class TelegramBotToken(Detector):
    """Telegram bot tokens: the bot's number, a colon, 35 characters starting with ``A``.

    Caught: ``bot 7123456789:AAk2Lm9Qp4Rs7Tv1Wx3Yz5Ab8Cd2Ef6GhIj``
    Passed: ``12:30:45``
    """

    type = "telegram_bot_token"
    priority = 90
    literals = ((":A",),)
    patterns = (r"(?<![\w:])\d{5,16}:A[A-Za-z0-9_-]{34}(?![\w-])",)
    triggers = (r"[^\w:]\d{5,16}:A[A-Za-z0-9_-]{34}[^\w-]",)


class ChatWebhook(Detector):
    """Microsoft Teams (Office 365 connector) and Discord webhook URLs: the URL is the credential.

    Caught: ``https://discord.com/api/webhooks/123456789012345678/k2Lm9Qp4Rs7Tv1Wx3Yz5Ab8Cd2Ef6GhIj0KlMnOpQ1k2Lm9Qp4Rs7Tv1Wx3Yz5Ab8Cd``
    Passed: ``https://discord.com/api/webhooks``
    """

    type = "webhook_url"
    priority = 90
    ignore_case = True
    literals = (("webhook.office.com/webhook", "outlook.office.com/webhook", "discord.com/api/webhooks/",
                 "discordapp.com/api/webhooks/"),)
    patterns = (r"(?:https?://)?(?:[A-Za-z0-9-]{1,63}\.webhook|outlook)\.office\.com/webhook(?:b2)?/"
                r"[A-Za-z0-9@/_.-]{40,600}"
                r"|(?:https?://)?(?:(?:ptb|canary)\.)?discord(?:app)?\.com/api/webhooks/\d{15,22}/[A-Za-z0-9_-]{40,100}",)
    triggers = (r"\.office\.com/webhook(?:b2)?/[A-Za-z0-9@/_.-]{40}|discord(?:app)?\.com/api/webhooks/\d{15}",)


class OnePasswordSecret(Detector):
    """1Password account secret keys and service account tokens.

    Caught: ``A3-ABC123-DEF456GHI78-JKL90-MNO12-PQR34``
    Passed: ``A3-paper-size``
    """

    type = "onepassword_secret"
    priority = 90
    literals = (("A3-", "ops_eyJ"),)
    patterns = (r"(?<![A-Za-z0-9_-])(?:A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})(?:-[A-Z0-9]{5}){3}"
                r"|ops_eyJ[A-Za-z0-9_-]{100,4000})(?![A-Za-z0-9_-])",)
    triggers = (r"A3-[A-Z0-9]{6}-[A-Z0-9-]{11}-[A-Z0-9]{5}|ops_eyJ[A-Za-z0-9_-]{100}",)


class AgeSecretKey(Detector):
    """age (file encryption) secret keys.

    Caught: ``AGE-SECRET-KEY-1QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7LQPZRY9X8GF2TVDW0S3JN54KHCE6MUA7LQPZRY9X8GF2T``
    Passed: ``AGE-SECRET-KEY-1``
    """

    type = "age_secret_key"
    priority = 90
    literals = (("AGE-SECRET-KEY-1",),)
    patterns = (r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}",)


class BedrockKey(Detector):
    """Amazon Bedrock API keys: long-term (``ABSK`` + base64 of ``BedrockAPIKey-``) and short-term
    (``bedrock-api-key-`` + base64 of a presigned ``bedrock.amazonaws.com`` URL).

    Caught: ``ABSKQmVkcm9ja0FQSUtleS1hYmNkLWF0LTEyMzQ1Njc4OTAxMjpr2Lm9Qp4Rs7Tv1Wx3Yz5Ab8Cd2Ef6Gh==``
    Passed: ``ABSK`` alone
    """

    type = "bedrock_key"
    priority = 90
    literals = (("ABSKQmVkcm9ja0FQSUtleS", "bedrock-api-key-"),)
    patterns = (r"(?<![A-Za-z0-9])(?:ABSKQmVkcm9ja0FQSUtleS|bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t)"
                r"[A-Za-z0-9+/]{20,4000}={0,2}(?![A-Za-z0-9+/=_-])",)
    triggers = (r"ABSKQmVkcm9ja0FQSUtleS[A-Za-z0-9+/]{20}|bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t",)


class BareStorageKey(Detector):
    """An Azure storage account key standing alone (88 base64 characters decoding to 64 random
    bytes), e.g. in a CSV line or a ``--account-key`` argument; text, hashes in ``sha512-``
    integrity strings, labelled SHA-512 digests (``SHA-512=…``) and runs of one character are
    left alone (an unlabelled base64 SHA-512 digest has the same shape and is masked).

    Caught: ``k2Lm9Qp4Rs7Tv1Wx3Yz5Ab8Cd2Ef6GhIj0KlMnOpQ1k2Lm9Qp4Rs7Tv1Wx3Yz5Ab8Cd2Ef6GhIj0KlMnOpQ1Ab==``
    Passed: ``sha512-k2Lm9Qp4Rs7Tv1Wx3Yz5Ab8Cd2Ef6GhIj0KlMnOpQ1k2Lm9Qp4Rs7Tv1Wx3Yz5Ab8Cd2Ef6GhIj0KlMnOpQ1Ab==``
    """

    type = "azure_storage_key"
    priority = 80
    literals = (("==",),)
    patterns = (r"(?<![A-Za-z0-9+_-])[A-Za-z0-9+/]{86}==(?![A-Za-z0-9+/=_-])",)
    triggers = (r"[A-Za-z0-9+/]{86}==",)

    _DIGEST_LABEL = re.compile(r"(?i)sha-?512[-:= ]?[\"']?$")

    def accept(self, value: str, match: re.Match[str]) -> bool:
        if len(set(value)) < 24 or not _mixed(value):
            return False
        if self._DIGEST_LABEL.search(match.string, max(0, match.start() - 10), match.start()):
            return False  # a SHA-512 digest has the same shape: labelled, it is one
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return False
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return True
        return not all(c.isprintable() or c in "\r\n\t" for c in text)
