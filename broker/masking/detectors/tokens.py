"""Vendor tokens recognisable by their own shape (prefix, length, alphabet).

Each class is one kind of token. The examples in the docstrings are tested
(``tests/masking/test_detectors.py``): ``Caught`` must be masked whole, ``Passed`` left alone.
"""

from __future__ import annotations

import re

from broker.masking.detectors.base import Detector


class AwsAccessKey(Detector):
    """AWS access key ids (long-term ``AKIA``, temporary ``ASIA``).

    Caught: ``AKIAIOSFODNN7EXAMPLE``
    Passed: ``AIDAJQABLZS4A3QDU576Q`` (a user id, not a key)
    """

    type = "aws_access_key"
    priority = 90
    literals = (("AKIA", "ASIA", "ABIA", "ACCA"),)
    patterns = (r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}(?![A-Za-z0-9])",)


class GithubToken(Detector):
    """GitHub personal, OAuth, user-to-server, server-to-server and refresh tokens.

    Caught: ``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``
    Passed: ``ghp_short``
    """

    type = "github_token"
    priority = 90
    literals = (("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),)
    patterns = (r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36}[A-Za-z0-9_]{0,215}|github_pat_[A-Za-z0-9_]{22,242})"
                r"(?![A-Za-z0-9_])",)
    triggers = (r"gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{22}",)


class GitlabToken(Detector):
    """GitLab personal/project/group, deploy, trigger, runner and feed tokens.

    Caught: ``glpat-xR4hLm2pQz8sVt6nYw1K``
    Passed: ``glpat-short``
    """

    type = "gitlab_token"
    priority = 90
    literals = (("glpat-", "gldt-", "glptt-", "glrt-", "glsoat-", "glft-", "glcbt-", "glimt-", "glagent-",
                 "gloas-", "glffct-", "GR1348941"),)
    patterns = (r"(?<![A-Za-z0-9_-])(?:gl(?:pat|dt|ptt|rt|soat|ft|cbt|imt|agent|oas|ffct)-[A-Za-z0-9_-]{20,64}"
                r"|GR1348941[A-Za-z0-9_-]{20})(?![A-Za-z0-9_-])",)
    triggers = (r"gl(?:pat|dt|ptt|rt|soat|ft|cbt|imt|agent|oas|ffct)-[A-Za-z0-9_-]{20}|GR1348941[A-Za-z0-9_-]{20}",)


class SlackToken(Detector):
    """Slack bot, user, app and configuration tokens.

    Caught: ``xoxb-2631872631-4927362512-sFq8kQp2Lm7vXz9Rt3Yw``
    Passed: ``xoxb-short``
    """

    type = "slack_token"
    priority = 90
    literals = (("xox", "xapp-"),)
    patterns = (r"(?<![A-Za-z0-9-])(?:xox[abposre]-[A-Za-z0-9-]{10,250}|xapp-\d-[A-Z0-9]{8,}-\d+-[a-z0-9]{20,})"
                r"(?![A-Za-z0-9-])",)
    triggers = (r"xox[abposre]-[A-Za-z0-9-]{10}|xapp-\d-[A-Z0-9]{8}",)


class SlackWebhook(Detector):
    """Slack incoming webhook URLs (the URL is the credential).

    Caught: ``https://hooks.slack.com/services/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``
    Passed: ``https://hooks.slack.com/``
    """

    type = "slack_webhook"
    priority = 90
    literals = (("hooks.slack.com/",),)
    patterns = (r"(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]{20,160}",)
    triggers = (r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]{20}",)


class StripeKey(Detector):
    """Stripe secret and restricted keys and webhook signing secrets (publishable keys are public).

    Caught: ``sk_live_51HqLyjWDarjtT1zdp7dc4eC39``
    Passed: ``pk_live_51HqLyjWDarjtT1zdp7dc4eC39``
    """

    type = "stripe_key"
    priority = 90
    literals = (("sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_"),)
    patterns = (r"(?<![A-Za-z0-9_])(?:(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,247}|whsec_[A-Za-z0-9+/=]{24,100})"
                r"(?![A-Za-z0-9_])",)
    triggers = (r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16}|whsec_[A-Za-z0-9+/=]{24}",)


class GoogleApiKey(Detector):
    """Google Cloud / Firebase / Maps API keys.

    Caught: ``AIzaSyD8f3kLm2Qp9Rs4Tv7Wx1Yz5Ab8Cd2Ef6G``
    Passed: ``AIzaShort``
    """

    type = "google_api_key"
    priority = 90
    literals = (("AIza",),)
    patterns = (r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])",)


class GoogleOauthSecret(Detector):
    """Google OAuth client secrets and access tokens.

    Caught: ``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``
    Passed: ``GOCSPX-short``
    """

    type = "google_oauth_secret"
    priority = 90
    literals = (("GOCSPX-", "ya29."),)
    patterns = (r"(?<![A-Za-z0-9_-])(?:GOCSPX-[A-Za-z0-9_-]{28}|ya29\.[0-9A-Za-z_-]{20,2048})(?![A-Za-z0-9_-])",)
    triggers = (r"GOCSPX-[A-Za-z0-9_-]{28}|ya29\.[0-9A-Za-z_-]{20}",)


class OpenAiKey(Detector):
    """OpenAI API keys: legacy, project, service-account and admin keys.

    Caught: ``sk-proj-Xk2Lm9Qp4Rs7Tv1Wx3Yz5Ab8Cd2Ef6Gh``
    Passed: ``sk-learn-preprocessing-pipeline-steps`` (no digits or capitals: a slug, not a key)
    """

    type = "openai_key"
    priority = 85
    literals = (("sk-",),)
    patterns = (r"(?<![A-Za-z0-9_-])sk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,200}(?![A-Za-z0-9_-])",)
    triggers = (r"sk-[A-Za-z0-9_-]{20}",)
    _DIGIT, _UPPER, _LOWER = re.compile(r"\d"), re.compile(r"[A-Z]"), re.compile(r"[a-z]")

    def accept(self, value: str, match: re.Match[str]) -> bool:
        body = value[3:]
        return all(p.search(body) for p in (self._DIGIT, self._UPPER, self._LOWER))


class AnthropicKey(Detector):
    """Anthropic API and admin keys.

    Caught: ``sk-ant-api03-Xk2Lm9Qp4Rs7Tv1Wx3Yz5Ab8Cd2Ef6GhXk2Lm9Qp4Rs7Tv1W``
    Passed: ``sk-ant-short``
    """

    type = "anthropic_key"
    priority = 90
    literals = (("sk-ant-",),)
    patterns = (r"(?<![A-Za-z0-9_-])sk-ant-(?:api|admin|oat|sid)\d{2}-[A-Za-z0-9_-]{20,200}(?![A-Za-z0-9_-])",)
    triggers = (r"sk-ant-(?:api|admin|oat|sid)\d{2}-[A-Za-z0-9_-]{20}",)


class NpmToken(Detector):
    """npm access tokens.

    Caught: ``npm_k2Lm9Qp4Rs7Tv1Wx3Yz5Ab8Cd2Ef6GhIj0KL``
    Passed: ``npm_install_log``
    """

    type = "npm_token"
    priority = 90
    literals = (("npm_",),)
    patterns = (r"(?<![A-Za-z0-9_])npm_[A-Za-z0-9]{36}(?![A-Za-z0-9_])",)


class SendgridKey(Detector):
    """SendGrid API keys.

    Caught: ``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``
    Passed: ``SG.short.key``
    """

    type = "sendgrid_key"
    priority = 90
    literals = (("SG.",),)
    patterns = (r"(?<![A-Za-z0-9_-])SG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}(?![A-Za-z0-9_-])",)
    triggers = (r"SG\.[A-Za-z0-9_-]{16}",)


class TwilioKey(Detector):
    """Twilio API key SIDs (``SK`` + 32 hex; their secrets are caught by assignments).

    Caught: ``SK0123456789abcdef0123456789abcdef``
    Passed: ``SK0123`` (too short)
    """

    type = "twilio_key"
    priority = 90
    literals = (("SK",),)
    patterns = (r"(?<![A-Za-z0-9])SK[0-9a-fA-F]{32}(?![A-Za-z0-9])",)


class AzureClientSecret(Detector):
    """Microsoft Entra ID application (client) secrets in the current format (``Q~`` marker).

    Caught: ``Xy78Q~k2Lm9Qp4Rs7Tv1Wx3Yz5Ab8Cd2Ef6GhIj0``
    Passed: ``Q~`` alone
    """

    type = "azure_client_secret"
    priority = 90
    literals = (("Q~",),)
    patterns = (r"(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.-]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34}(?![A-Za-z0-9_~.-])",)


class AzureStorageKey(Detector):
    """Azure storage account keys in connection strings (``AccountKey=``).

    Caught: ``AccountKey=k2Lm9Qp4Rs7Tv1Wx3Yz5Ab8Cd2Ef6GhIj0KlMnOpQ1k2Lm9Qp4Rs7Tv1Wx3Yz5Ab8Cd2Ef6GhIj0KlMnOpQ1Ab==``
    Passed: ``AccountName=prodstore``
    """

    type = "azure_storage_key"
    priority = 92
    ignore_case = True
    literals = (("accountkey",),)
    patterns = (r"(?<![A-Za-z0-9])AccountKey[ \t]*=[ \t]*(?P<value>[A-Za-z0-9+/]{86}==)",)


class AzureSharedAccessKey(Detector):
    """Shared access keys of Service Bus, Event Hubs, IoT Hub, Relay connection strings.

    Caught: ``SharedAccessKey=k2Lm9Qp4Rs7Tv1Wx3Yz5Ab8Cd2Ef6GhIj0KlMnOpQ1A=``
    Passed: ``SharedAccessKeyName=RootManageSharedAccessKey``
    """

    type = "azure_shared_key"
    priority = 92
    ignore_case = True
    literals = (("sharedaccesskey",),)
    patterns = (r"(?<![A-Za-z0-9])SharedAccessKey[ \t]*=[ \t]*(?P<value>[A-Za-z0-9+/]{20,88}={0,2})",)
    triggers = (r"SharedAccessKey[ \t]*=[ \t]*[A-Za-z0-9+/]{20}",)


class AzureSasSignature(Detector):
    """The signature of an Azure shared access signature (SAS) URL or token: the rest is harmless.

    Caught: ``?sv=2022-11-02&sp=rl&se=2025-01-01&sig=k2Lm9Qp4Rs7Tv1Wx3Yz5Ab8Cd2Ef6GhIj0KlMnOpQ%3D``
    Passed: ``?sv=2022-11-02&ss=b``
    """

    type = "azure_sas_signature"
    priority = 88
    literals = (("sig=",),)
    patterns = (r"(?<![A-Za-z0-9_-])sig=(?P<value>[A-Za-z0-9%+/=]{20,200})",)
    triggers = (r"sig=[A-Za-z0-9%+/=]{20}",)
