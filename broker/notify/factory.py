"""Builds the configured notifier from ``Settings``."""

from __future__ import annotations

from azure.core.credentials import TokenCredential

from broker.catalog import KeyVaultCredential
from broker.notify.base import Notifier
from broker.notify.email import EmailNotifier, SilentNotifier
from broker.secrets import CredentialResolver
from broker.settings import Settings


def notifier_from_settings(settings: Settings, credentials: CredentialResolver,
                           credential: TokenCredential | None = None) -> Notifier:
    if settings.logic_app_url_secret:
        from broker.notify.logicapp import LogicAppNotifier

        secret = KeyVaultCredential(secret=settings.logic_app_url_secret)
        return LogicAppNotifier(lambda: credentials.resolve(secret).value)
    if settings.mail_transport == "smtp":
        from broker.notify.smtp import SmtpMailer

        return EmailNotifier(SmtpMailer(settings.smtp_host, settings.smtp_port, settings.mail_sender,
                                        starttls=settings.smtp_starttls, username=settings.smtp_username,
                                        password=settings.smtp_password.get_secret_value()))
    if settings.mail_transport == "acs":
        from broker.notify.acs import AcsMailer

        return EmailNotifier(AcsMailer(settings.mail_sender, endpoint=settings.acs_endpoint, credential=credential,
                                       connection_string=settings.acs_connection_string.get_secret_value()))
    return SilentNotifier()
