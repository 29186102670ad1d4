"""SMTP delivery (the dev stack's mail sink, or any relay)."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

from broker.notify.base import Email
from broker.problems import Unavailable


class SmtpMailer:
    def __init__(self, host: str, port: int, sender: str, *, starttls: bool = False, username: str = "",
                 password: str = "", timeout: float = 10.0) -> None:
        self._host, self._port, self._sender = host, port, sender
        self._starttls, self._username, self._password = starttls, username, password
        self._timeout = timeout

    def message(self, email: Email) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self._sender
        msg["To"] = formataddr((email.to_name, email.to))
        msg["Subject"] = email.subject
        msg["Message-ID"] = make_msgid(domain=self._sender.rpartition("@")[2] or "localhost")
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(email.text)
        msg.add_alternative(email.html, subtype="html")
        return msg

    def send(self, email: Email) -> None:
        try:
            with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
                if self._starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self._username:
                    smtp.login(self._username, self._password)
                smtp.send_message(self.message(email))
        except (OSError, smtplib.SMTPException) as exc:
            raise Unavailable(f"The mail relay {self._host}:{self._port} refused or is unreachable.",
                              code="mail_unavailable") from exc
