"""Every detector the engine runs, in one explicit list (add a class here to add a detector)."""

from __future__ import annotations

from broker.masking.detectors.base import Detection, Detector
from broker.masking.detectors.credentials import EnvKeyName, Jwt, PrivateKey, SecretAssignment, UrlPassword
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
from broker.masking.detectors.vendors import (
    AgeSecretKey,
    BareStorageKey,
    BedrockKey,
    ChatWebhook,
    DatabricksToken,
    DigitalOceanToken,
    GrafanaToken,
    HuggingFaceToken,
    LinearKey,
    NotionToken,
    OnePasswordSecret,
    PostmanKey,
    PypiToken,
    SentryToken,
    ShopifyToken,
    TelegramBotToken,
    VaultToken,
)

DETECTORS: tuple[Detector, ...] = (
    PrivateKey(), Jwt(), AwsAccessKey(), AzureStorageKey(), AzureSharedAccessKey(), AzureSasSignature(),
    AzureClientSecret(), GithubToken(), GitlabToken(), SlackToken(), SlackWebhook(), StripeKey(),
    GoogleApiKey(), GoogleOauthSecret(), OpenAiKey(), AnthropicKey(), NpmToken(), SendgridKey(), TwilioKey(),
    HuggingFaceToken(), DigitalOceanToken(), PypiToken(), GrafanaToken(), PostmanKey(), ShopifyToken(),
    SentryToken(), NotionToken(), LinearKey(), DatabricksToken(), VaultToken(), TelegramBotToken(), ChatWebhook(),
    OnePasswordSecret(), AgeSecretKey(), BedrockKey(), BareStorageKey(),
    UrlPassword(), SecretAssignment(), EnvKeyName(),
    Card(), Ssn(), Iban(), Email(), Phone(), IpAddress(),
    Base64Text(), JsonKeyHint(), JsonEscapeHint(),
)

__all__ = ["DETECTORS", "Detection", "Detector"]
