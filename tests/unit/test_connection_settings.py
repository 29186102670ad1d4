"""Every engine's ``connection:`` is validated when the catalog loads: an unknown key, a wrong type
or a missing required setting is a catalog error naming the file, the target and the field, never
a silent default. Each refusal is tried in several spellings."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from broker.catalog import CatalogError, Target, load_catalog
from broker.targets import ENGINES
from broker.targets.kubernetes_connection import KubernetesConnection
from broker.targets.mssql_connection import AzureSqlConnection
from broker.targets.mysql_connection import MySQLConnection, MySQLTls
from broker.targets.postgres_connection import PostgresConnection

ROOT = Path(__file__).resolve().parents[2]
KV = {"source": "key-vault", "secret": "s"}


def _load(tmp_path: Path, engine: str, connection: object) -> CatalogError:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump({"targets": {"orders-db": {"engine": engine, "credential": KV,
                                                              "connection": connection}}}))
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    assert str(path) in str(err.value) and "orders-db" in str(err.value)
    return err.value


@pytest.mark.parametrize("engine, connection, field", [
    # unknown keys: typos and keys of another engine
    ("postgres", {"hots": "db.internal"}, "connection.hots"),
    ("postgres", {"host": "db.internal", "Host": "db.internal"}, "connection.Host"),
    ("postgres", {"host": "db.internal", "ssl_mode": "require"}, "connection.ssl_mode"),
    ("postgres", {"host": "db.internal", "password": "hunter2"}, "connection.password"),
    ("postgres", {"host": "db.internal", "tls": True}, "connection.tls"),  # MySQL's spelling
    ("mysql", {"host": "db.internal", "sslmode": "require"}, "connection.sslmode"),  # PostgreSQL's
    ("mysql", {"host": "db.internal", "tls": {"ca": "/ca.pem", "verify": False}}, "connection.tls.MySQLTls.verify"),
    ("mssql", {"host": "x.database.windows.net", "trust_server_cert": True}, "connection.trust_server_cert"),
    ("mssql", {"server": "x.database.windows.net"}, "connection.server"),
    ("kubernetes", {"server": "https://k8s:6443", "namespace": "default"}, "connection.namespace"),
    ("kubernetes", {"host": "https://k8s:6443"}, "connection.host"),
    ("kubernetes", {"server": "https://k8s:6443", "insecure-skip-tls-verify": True},
     "connection.insecure-skip-tls-verify"),
])
def test_an_unknown_setting_is_refused(tmp_path, engine, connection, field):
    error = _load(tmp_path, engine, connection)
    assert field in str(error) and "Extra inputs are not permitted" in str(error)


@pytest.mark.parametrize("engine, connection, field", [
    ("postgres", {"host": "db.internal", "port": "5432"}, "connection.port"),  # a string is not a port
    ("postgres", {"host": "db.internal", "port": 0}, "connection.port"),
    ("postgres", {"host": "db.internal", "port": 70000}, "connection.port"),
    ("postgres", {"host": "db.internal", "port": True}, "connection.port"),
    ("postgres", {"host": 10}, "connection.host"),
    ("postgres", {"host": ""}, "connection.host"),
    ("postgres", {"host": "db.internal", "sslmode": "verify_full"}, "connection.sslmode"),
    ("postgres", {"host": "db.internal", "sslmode": True}, "connection.sslmode"),
    ("postgres", {"host": "db.internal", "connect_timeout": "5"}, "connection.connect_timeout"),
    ("postgres", ["host", "db.internal"], "connection"),
    ("postgres", "host=db.internal", "connection"),
    ("mysql", {"host": "db.internal", "tls": "yes"}, "connection.tls"),
    ("mysql", {"host": "db.internal", "port": 3306.5}, "connection.port"),
    ("mssql", {"host": "x.database.windows.net", "trust_server_certificate": "no"},
     "connection.trust_server_certificate"),
    ("kubernetes", {"server": ["https://k8s:6443"]}, "connection.server"),
    ("kubernetes", {"server": "https://k8s:6443", "certificate_authority_data": 12},
     "connection.certificate_authority_data"),
])
def test_a_wrong_type_is_refused(tmp_path, engine, connection, field):
    assert field in str(_load(tmp_path, engine, connection))


@pytest.mark.parametrize("connection", [None, {}, {"database": "orders"}, {"host": None, "database": "orders"},
                                        {"port": 1433}])
def test_a_missing_required_setting_is_refused(tmp_path, connection):
    """Azure SQL has no local default server: ``host`` is required."""
    path = tmp_path / "catalog.yaml"
    target: dict[str, object] = {"engine": "mssql", "credential": KV}
    if connection is not None:
        target["connection"] = connection
    path.write_text(yaml.safe_dump({"targets": {"orders-db": target}}))
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    assert "orders-db" in str(err.value) and "connection.host" in str(err.value)


def test_an_unregistered_engine_cannot_smuggle_settings(tmp_path):
    error = _load(tmp_path, "oracle", {"host": "db.internal"})
    assert "oracle" in str(error) and "not registered" in str(error)


def test_engines_receive_their_own_typed_settings(tmp_path):
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump({"targets": {
        "pg": {"engine": "postgres", "credential": KV,
               "connection": {"host": "db.internal", "dbname": "orders", "sslmode": "verify-full"}},
        "my": {"engine": "mysql", "credential": KV, "connection": {"host": "m", "tls": {"ca": "/ca.pem"}}},
        "sql": {"engine": "mssql", "credential": KV, "connection": {"host": "x.database.windows.net"}},
        "k8s": {"engine": "kubernetes", "credential": KV, "connection": {"server": "https://k8s:6443"}},
    }}))
    catalog = load_catalog(path)
    pg = catalog.get("pg").settings(PostgresConnection)
    assert pg.database == "orders" and pg.libpq() == {"host": "db.internal", "dbname": "orders",
                                                      "sslmode": "verify-full",
                                                      "application_name": "agent-access-broker"}
    assert catalog.get("my").settings(MySQLConnection).tls == MySQLTls(ca="/ca.pem")
    assert catalog.get("sql").settings(AzureSqlConnection).port == 1433
    assert catalog.get("k8s").settings(KubernetesConnection).server == "https://k8s:6443"
    with pytest.raises(TypeError):
        catalog.get("pg").settings(MySQLConnection)  # an engine never reads another engine's settings


def test_settings_survive_a_dump_and_a_reload():
    target = Target(name="pg", engine="postgres", credential=KV,
                    connection={"host": "db.internal", "port": 6432, "database": "orders"})
    again = Target.model_validate(target.model_dump())
    assert again == target and again.settings(PostgresConnection).port == 6432


def test_settings_of_another_engine_are_refused_as_objects():
    with pytest.raises(ValueError, match="PostgresConnection"):
        Target(name="my", engine="mysql", credential=KV, connection=PostgresConnection(host="db"))


@pytest.mark.parametrize("path", sorted(
    [*(ROOT / "config").rglob("catalog*.yaml"), ROOT / "docs" / "engines.md", ROOT / "docs" / "kubernetes.md",
     ROOT / "README.md"]),
    ids=lambda p: str(p.relative_to(ROOT)))
def test_every_catalog_in_the_repository_loads(tmp_path, path):
    """The example catalogs, commented or in Markdown, are real catalogs for the engines they name."""
    text = path.read_text()
    blocks = _yaml_blocks(text) if path.suffix == ".md" else [text, _uncommented(text)]
    found = 0
    for block in blocks:
        data = yaml.safe_load(block)
        if not isinstance(data, dict) or not isinstance(data.get("targets"), dict) or not data["targets"]:
            continue
        targets = {name: spec for name, spec in data["targets"].items()
                   if isinstance(spec, dict) and "credential" in spec}
        if not targets:
            continue
        file = tmp_path / f"c{found}.yaml"
        file.write_text(yaml.safe_dump({"targets": targets}))
        load_catalog(file)
        found += 1
    assert found


def _yaml_blocks(text: str) -> list[str]:
    blocks, current, inside = [], [], False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            if inside:
                blocks.append("\n".join(current))
                current = []
            inside = not inside and line.strip() in ("```yaml", "```yml")
            continue
        if inside:
            current.append(line)
    return blocks


def _uncommented(text: str) -> str:
    lines = [line[2:] if line.startswith("# ") else line[1:] if line.startswith("#") else line
             for line in text.splitlines() if line.startswith("#")]
    return "\n".join(line for line in lines if line.startswith((" ", "targets:")))


def test_every_registered_engine_resolves():
    """Every ``ENGINES`` entry imports, speaks its declared language and dialect, and its settings
    model accepts an empty mapping or names the setting it requires."""
    for name, entry in ENGINES.items():
        engine_class = entry.load()
        assert engine_class.language == entry.language.name, name
        assert engine_class.dialect == entry.dialect, name
        assert entry.dialect in entry.language.dialects, name
        assert "connection" not in entry.settings.model_fields


@pytest.mark.parametrize("engine, connection, verdict", [
    ("postgres", {"host": "127.0.0.1"}, None),
    ("postgres", {}, None),  # the local socket
    ("postgres", {"host": "db.example"}, ("connection.sslmode", False, "prefer")),
    ("postgres", {"host": "db.example", "sslmode": "allow"}, ("connection.sslmode", False, "allow")),
    ("postgres", {"host": "db.example", "sslmode": "verify-full"}, ("connection.sslmode", True, "verify-full")),
    ("mysql", {}, None),
    ("mysql", {"host": "db.example"}, ("connection.tls", False, "off")),
    ("mysql", {"host": "db.example", "tls": {"ca": "/ca.pem"}}, ("connection.tls", True, "on")),
    ("mssql", {"host": "x.database.windows.net"}, None),  # the ODBC driver always encrypts (Encrypt=yes)
    ("kubernetes", {"server": "https://k8s:6443"}, None),
])
def test_the_transport_verdict_comes_from_the_settings(engine, connection, verdict):
    found = Target(name="t", engine=engine, credential=KV, connection=connection).connection.transport()
    assert (found and (found.setting, found.encrypted, found.value)) == verdict


def test_the_app_refuses_to_start_on_settings_that_do_not_fit(tmp_path):
    """The composition root loads the catalog before it builds anything that talks to Azure."""
    from broker.runtime import Broker
    from broker.settings import Settings

    path = tmp_path / "catalog.yaml"
    path.write_text("targets:\n  orders-db:\n    engine: mysql\n    credential: {source: key-vault, secret: s}\n"
                    "    connection: {host: db.internal, tls: {ca: /ca.pem, verify_identity: 'no'}}\n")
    with pytest.raises(CatalogError) as err:
        Broker.from_settings(Settings(catalog_path=path))
    assert "orders-db" in str(err.value) and "connection.tls" in str(err.value)
