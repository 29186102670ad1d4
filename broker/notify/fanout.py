"""Asking on several channels at once: mail and a Logic App (which posts to Teams), say.

Every channel is tried even when an earlier one fails, so one broken transport never silences
the others. The ask still fails (``notify_unavailable``; the activity retries and asks everyone
again, as a single transport's retry already does) unless every channel delivered, so the
journal's ``approval.notified`` names only channels that did.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from broker.notify.base import ApprovalAsk, Notifier
from broker.problems import Unavailable

log = logging.getLogger(__name__)


class FanOutNotifier:
    def __init__(self, notifiers: Sequence[Notifier]) -> None:
        if len(notifiers) < 2:
            raise ValueError("a fan-out needs at least two channels; use the one notifier directly")
        self._notifiers = tuple(notifiers)
        self.channel = "+".join(n.channel for n in self._notifiers)

    def ask(self, asks: list[ApprovalAsk]) -> None:
        failed: list[str] = []
        for notifier in self._notifiers:
            try:
                notifier.ask(asks)
            except Exception as exc:  # any transport's failure: the other channels still go out
                log.warning("approval notification through %s failed: %s", notifier.channel, exc)
                failed.append(notifier.channel)
        if failed:
            raise Unavailable(f"Approvers could not be asked through {', '.join(failed)}; the other channels "
                              "delivered, and every channel is asked again on retry.", code="notify_unavailable")
