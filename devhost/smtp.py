"""The dev stack's mail sink: an aiosmtpd server on 127.0.0.1 that keeps every message as an
``.eml`` file under ``<state>/mail/`` (open the newest one to follow an approval link)."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class _Keep:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode()
        with self._lock:
            name = f"{time.strftime('%Y%m%d-%H%M%S')}-{next(self._counter):04d}.eml"
            path = self.folder / name
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)  # readers never see half a message
        return "250 Message accepted for delivery"


class MailSink:
    def __init__(self, folder: Path, port: int = 0) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        # aiosmtpd checks its server by connecting to it, so it needs a real port (not 0).
        self._controller = Controller(_Keep(folder), hostname="127.0.0.1", port=port or _free_port())

    @property
    def port(self) -> int:
        return self._controller.port

    def start(self) -> MailSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def messages(self) -> list[Path]:
        """Every kept message, oldest first."""
        return sorted(self.folder.glob("*.eml"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_message(path: Path) -> EmailMessage:
    return message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[return-value]
