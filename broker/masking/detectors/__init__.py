"""Every detector the engine runs, in one explicit list (add a class here to add a detector)."""

from __future__ import annotations

from broker.masking.detectors.base import Detector, Finding
from broker.masking.detectors.credentials import Jwt, PrivateKey, SecretAssignment, UrlPassword
from broker.masking.detectors.nested import Base64Text, JsonEscapeHint, JsonKeyHint
from broker.masking.detectors.pii import Card, Email, Iban, IpAddress, Phone, Ssn
from broker.masking.detectors.tokens import (
    AnthropicKey,
    AwsAccessKey,
    AzureClientSecret,
    AzureSasSignature,
    AzureSharedAccessKey,
    AzureStorageKey,
    GithubToken,
    GitlabToken,
    GoogleApiKey,
    GoogleOauthSecret,
    NpmToken,
    OpenAiKey,
    SendgridKey,
    SlackToken,
    SlackWebhook,
    StripeKey,
    TwilioKey,
)

DETECTORS: tuple[Detector, ...] = (
    PrivateKey(), Jwt(), AwsAccessKey(), AzureStorageKey(), AzureSharedAccessKey(), AzureSasSignature(),
    AzureClientSecret(), GithubToken(), GitlabToken(), SlackToken(), SlackWebhook(), StripeKey(),
    GoogleApiKey(), GoogleOauthSecret(), OpenAiKey(), AnthropicKey(), NpmToken(), SendgridKey(), TwilioKey(),
    UrlPassword(), SecretAssignment(),
    Card(), Ssn(), Iban(), Email(), Phone(), IpAddress(),
    Base64Text(), JsonKeyHint(), JsonEscapeHint(),
)

__all__ = ["DETECTORS", "Detector", "Finding"]
