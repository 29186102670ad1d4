"""Builds the configured notifier from ``Settings``: one channel, or several at once
(``BROKER_APPROVAL_NOTIFY_CHANNELS=email,logic-app``)."""

from __future__ import annotations

from azure.core.credentials import TokenCredential

from broker.catalog import KeyVaultCredential
from broker.notify.base import Notifier
from broker.notify.email import EmailNotifier, SilentNotifier
from broker.secrets import CredentialResolver
from broker.settings import NotifyChannel, Settings


def notifier_from_settings(settings: Settings, credentials: CredentialResolver,
                           credential: TokenCredential | None = None) -> Notifier:
    names = settings.approval_notify_channels or (default_channel(settings),)
    built = [_channel(name, settings, credentials, credential) for name in names]
    if len(built) == 1:
        return built[0]
    from broker.notify.fanout import FanOutNotifier

    return FanOutNotifier(built)


def default_channel(settings: Settings) -> NotifyChannel | None:
    """Without ``approval_notify_channels``: the Logic App when its URL is configured, else mail."""
    if settings.logic_app_url_secret:
        return "logic-app"
    return "email" if settings.mail_transport != "none" else None


def _channel(name: NotifyChannel | None, settings: Settings, credentials: CredentialResolver,
             credential: TokenCredential | None) -> Notifier:
    if name == "logic-app":
        from broker.notify.logicapp import LogicAppNotifier

        secret = KeyVaultCredential(secret=settings.logic_app_url_secret)
        return LogicAppNotifier(lambda: credentials.resolve(secret).value)
    if name == "email" and settings.mail_transport == "smtp":
        from broker.notify.smtp import SmtpMailer

        return EmailNotifier(SmtpMailer(settings.smtp_host, settings.smtp_port, settings.mail_sender,
                                        starttls=settings.smtp_starttls, username=settings.smtp_username,
                                        password=settings.smtp_password.get_secret_value()))
    if name == "email" and settings.mail_transport == "acs":
        from broker.notify.acs import AcsMailer

        return EmailNotifier(AcsMailer(settings.mail_sender, endpoint=settings.acs_endpoint, credential=credential,
                                       connection_string=settings.acs_connection_string.get_secret_value()))
    return SilentNotifier()
