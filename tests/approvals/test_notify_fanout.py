"""Asking on several channels at once, through a real SMTP sink and a stand-in Logic App trigger:
every channel is tried even when another one fails, and the ask only counts as sent when all did."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from broker.catalog import KeyVaultCredential
from broker.notify.email import EmailNotifier, SilentNotifier
from broker.notify.factory import notifier_from_settings
from broker.notify.fanout import FanOutNotifier
from broker.notify.logicapp import LogicAppNotifier
from broker.notify.smtp import SmtpMailer
from broker.problems import Unavailable
from broker.secrets import SecretValue
from broker.settings import Settings
from devhost._http import Response, StandInServer
from devhost.smtp import MailSink, read_message
from tests.approvals.test_directory_and_notify import ask


@pytest.fixture
def sink(tmp_path) -> Iterator[MailSink]:
    mail = MailSink(tmp_path / "mail").start()
    yield mail
    mail.stop()


@pytest.fixture
def trigger() -> Iterator[tuple[str, list[dict]]]:
    received: list[dict] = []

    def accept(req):
        received.append(req.json())
        return Response(202, {})

    server = StandInServer("127.0.0.1", 0, [("POST", re.compile(r"/workflows/approve"), accept)]).start_background()
    yield f"{server.base_url}/workflows/approve?sig=secret", received
    server.stop()


def _mail(port: int) -> EmailNotifier:
    return EmailNotifier(SmtpMailer("127.0.0.1", port, "broker@dev.example"))


def test_both_channels_deliver(sink, trigger):
    url, received = trigger
    notifier = FanOutNotifier([_mail(sink.port), LogicAppNotifier(lambda: url)])
    notifier.ask([ask()])
    assert notifier.channel == "email+logic-app"
    assert [read_message(p)["To"] for p in sink.messages()] == ["Ada Approver <ada@dev.example>"]
    assert [a["name"] for a in received[0]["approvers"]] == ["Ada Approver"]


def test_a_dead_logic_app_does_not_silence_the_mail_and_the_ask_fails(sink):
    notifier = FanOutNotifier([LogicAppNotifier(lambda: "http://127.0.0.1:9/nothing", timeout=1), _mail(sink.port)])
    with pytest.raises(Unavailable, match="logic-app") as raised:
        notifier.ask([ask()])
    assert raised.value.code == "notify_unavailable" and "email" not in raised.value.detail.split(";")[0]
    assert len(sink.messages()) == 1


def test_a_dead_mail_relay_does_not_silence_the_logic_app(trigger):
    url, received = trigger
    notifier = FanOutNotifier([_mail(9), LogicAppNotifier(lambda: url)])
    with pytest.raises(Unavailable, match="through email;"):
        notifier.ask([ask()])
    assert len(received) == 1


def test_a_fan_out_of_one_is_refused():
    with pytest.raises(ValueError, match="at least two"):
        FanOutNotifier([SilentNotifier()])


class _Secrets:
    def resolve(self, credential: KeyVaultCredential) -> SecretValue:
        return SecretValue("http://127.0.0.1:9/nothing")


@pytest.mark.parametrize(("env", "channel"), [
    ({}, "none"),
    ({"mail_transport": "smtp"}, "email"),
    ({"mail_transport": "smtp", "logic_app_url_secret": "la"}, "logic-app"),  # unchanged: the Logic App wins
    ({"mail_transport": "smtp", "logic_app_url_secret": "la", "approval_notify_channels": "email"}, "email"),
    ({"mail_transport": "smtp", "logic_app_url_secret": "la", "approval_notify_channels": "logic-app, email"},
     "logic-app+email"),
])
def test_settings_choose_the_channels(env, channel):
    assert notifier_from_settings(Settings(**env), _Secrets()).channel == channel


@pytest.mark.parametrize("env", [
    {"approval_notify_channels": "email"},  # mail_transport none: would ask nobody
    {"approval_notify_channels": "logic-app", "mail_transport": "smtp"},  # no trigger URL
    {"approval_notify_channels": "email,email", "mail_transport": "smtp"},
    {"approval_notify_channels": "teams", "mail_transport": "smtp"},  # not a channel (yet)
    {"approval_notify_channels": "Email", "mail_transport": "smtp"},
])
def test_a_channel_named_but_not_configured_fails_at_start(env):
    with pytest.raises(ValidationError):
        Settings(**env)
