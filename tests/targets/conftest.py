"""Real databases for the engine tests: one MariaDB (Debian's server binary) and one embedded
PostgreSQL per session, each with a ``demo`` database, a writer login (full DML/DDL rights on it,
so only the read-only transaction can stop a smuggled write) and a reader login (SELECT only)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from broker.catalog import Target
from broker.secrets import SecretValue
from devhost import mariadb
from devhost.postgres import EmbeddedPostgres
from devhost.stack import free_port


@dataclass
class Database:
    target: Target
    writer: SecretValue
    reader: SecretValue
    server: object


def _secret(user: str, password: str) -> SecretValue:
    return SecretValue(json.dumps({"username": user, "password": password}), version=f"v-{user}")


@pytest.fixture(scope="session")
def maria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    if not mariadb.available():
        pytest.skip("MariaDB is not installed: run scripts/system-deps.sh (package mariadb-server)")
    server = mariadb.EmbeddedMariaDB(tmp_path_factory.mktemp("mariadb"), free_port()).start()
    writer_pw, reader_pw = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    with server.admin() as admin, admin.cursor() as cur:
        for sql in [
            "CREATE DATABASE demo CHARACTER SET utf8mb4",
            "CREATE TABLE demo.orders (id INT PRIMARY KEY, status VARCHAR(20), amount DECIMAL(12,2))",
            "INSERT INTO demo.orders VALUES (1, 'new', 10.50), (2, 'paid', 99.99), (3, 'paid', 0.01)",
            "CREATE SEQUENCE demo.order_ids",
            f"CREATE USER 'writer'@'127.0.0.1' IDENTIFIED BY '{writer_pw}'",
            "GRANT ALL PRIVILEGES ON demo.* TO 'writer'@'127.0.0.1'",
            f"CREATE USER 'reader'@'127.0.0.1' IDENTIFIED BY '{reader_pw}'",
            "GRANT SELECT, SHOW VIEW ON demo.* TO 'reader'@'127.0.0.1'",
        ]:
            cur.execute(sql)
    target = Target(name="demo-mariadb", engine="mysql", credential={"source": "key-vault", "secret": "x"},
                    connection={"host": "127.0.0.1", "port": server.port, "database": "demo"})
    yield Database(target, _secret("writer", writer_pw), _secret("reader", reader_pw), server)
    server.destroy()


@pytest.fixture(scope="session")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", free_port()).start()
    writer_pw, reader_pw = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    with server.admin() as admin:
        admin.execute("CREATE DATABASE demo")
        admin.execute(f"CREATE ROLE writer LOGIN PASSWORD '{writer_pw}'")
        admin.execute(f"CREATE ROLE reader LOGIN PASSWORD '{reader_pw}'")
    with server.admin("demo") as db:
        for sql in [
            "CREATE TABLE orders (id int PRIMARY KEY, status text, amount numeric(12,2))",
            "INSERT INTO orders VALUES (1, 'new', 10.50), (2, 'paid', 99.99), (3, 'paid', 0.01)",
            "CREATE SEQUENCE order_ids",
            "CREATE FUNCTION purge_orders() RETURNS int LANGUAGE sql AS 'DELETE FROM orders RETURNING 1'",
            "CREATE PROCEDURE archive_orders() LANGUAGE sql AS 'DELETE FROM orders'",
            "GRANT ALL ON SCHEMA public TO writer",
            "GRANT ALL ON ALL TABLES IN SCHEMA public TO writer",
            "GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO writer",
            "GRANT USAGE ON SCHEMA public TO reader",
            "GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader",
        ]:
            db.execute(sql)
    target = Target(name="demo-pg", engine="postgres", credential={"source": "key-vault", "secret": "x"},
                    connection={"host": "127.0.0.1", "port": server.port, "database": "demo",
                                "sslmode": "disable"})
    yield Database(target, _secret("writer", writer_pw), _secret("reader", reader_pw), server)
    server.destroy()
