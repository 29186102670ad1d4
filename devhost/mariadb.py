"""A real MariaDB server (Debian's ``mariadb-server`` binaries) on 127.0.0.1, data in a temp folder.

For the MySQL engine's tests and the local stack: ``mariadb-install-db`` creates a fresh data
directory, ``mariadbd`` serves it on a TCP port and a Unix socket inside that directory, and
``stop`` ends exactly the process this object started (by its PID). Nothing reads the machine's
``/etc/mysql`` (``--no-defaults``), so a system MariaDB, if any, is never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pymysql

INSTALL_DB = "mariadb-install-db"
SERVER = "mariadbd"


def available() -> bool:
    """True when the MariaDB server binaries are installed (``scripts/system-deps.sh``)."""
    return bool(_find(SERVER) and _find(INSTALL_DB))


def _find(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")


class EmbeddedMariaDB:
    """One throw-away MariaDB server; ``admin()`` is a root connection over the Unix socket."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.base_dir = data_dir.resolve()
        self.data_dir = self.base_dir / "data"
        self.port = port
        self.socket = self.base_dir / "mariadb.sock"
        self.log_path = self.base_dir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        # mariadbd refuses to run as root unless told so explicitly; the folder is ours anyway.
        self._user = ["--user=root"] if os.geteuid() == 0 else []

    def start(self, timeout: float = 60.0) -> EmbeddedMariaDB:
        server, install = _find(SERVER), _find(INSTALL_DB)
        if not server or not install:
            raise RuntimeError("MariaDB is not installed; run scripts/system-deps.sh (package mariadb-server)")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if not (self.data_dir / "mysql").exists():
            subprocess.run(
                [install, "--no-defaults", f"--datadir={self.data_dir}", "--auth-root-authentication-method=normal",
                 "--skip-test-db", "--skip-name-resolve", *self._user],
                check=True, capture_output=True, timeout=timeout)
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the server
        self.process = subprocess.Popen(
            [server, "--no-defaults", f"--datadir={self.data_dir}", f"--socket={self.socket}",
             f"--port={self.port}", "--bind-address=127.0.0.1", "--skip-name-resolve", "--skip-log-bin",
             f"--pid-file={self.base_dir / 'mariadb.pid'}", "--innodb-buffer-pool-size=16M",
             "--innodb-log-file-size=8M", "--innodb-flush-log-at-trx-commit=0", "--performance-schema=OFF",
             "--max-connections=60", "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci",
             "--secure-file-priv=" + str(self.base_dir / "files"), *self._user],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        (self.base_dir / "files").mkdir(exist_ok=True)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"mariadbd exited ({self.process.returncode}); see {self.log_path}")
            try:
                self.admin().close()
                return
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def admin(self, database: str | None = None) -> pymysql.connections.Connection:
        """A root connection over the Unix socket, autocommit, for seeding and tests."""
        return pymysql.connect(unix_socket=str(self.socket), user="root", database=database, autocommit=True,
                               connect_timeout=5)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def destroy(self) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.base_dir)
