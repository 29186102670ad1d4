from __future__ import annotations

import datetime as dt
import decimal
import uuid

import pytest

from broker.catalog import CatalogError, load_catalog
from broker.problems import NotFound
from broker.targets._render import to_json_value

GOOD = """
targets:
  orders-db:
    engine: postgres
    labels: {env: prod}
    credential: {source: key-vault, secret: orders-reader}
    connection: {host: db.internal, port: 5432, database: orders}
"""


def test_a_valid_catalog_loads_and_names_its_targets(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    catalog = load_catalog(path)
    target = catalog.get("orders-db")
    assert target.name == "orders-db" and target.read_only is True and target.labels == {"env": "prod"}
    assert "db.internal" not in str(target.public_view()) and "orders-reader" not in str(target.public_view())
    with pytest.raises(NotFound) as err:
        catalog.get("nope")
    assert err.value.code == "unknown_target"


@pytest.mark.parametrize("text, fragment", [
    ("targets:\n  Bad_Name:\n    engine: postgres\n    credential: {secret: s}\n", "name"),
    ("targets:\n  a:\n    engine: postgres\n", "credential"),
    ("targets:\n  a:\n    engine: postgres\n    credential: {secret: 'has spaces'}\n", "secret"),
    ("targets:\n  a:\n    engine: postgres\n    credential: {secret: s}\n    surprise: 1\n", "surprise"),
    ("targets: [", "cannot read"),
])
def test_invalid_catalogs_fail_with_the_file_and_field_named(tmp_path, text, fragment):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    assert str(path) in str(err.value) and fragment in str(err.value)


def test_an_engine_without_implementation_stops_start_up(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(GOOD.replace("postgres", "oracle"))
    with pytest.raises(CatalogError, match="oracle"):
        load_catalog(path).check_engines({"postgres"})


@pytest.mark.parametrize("value, expected", [
    (decimal.Decimal("12.30"), "12.30"),
    (decimal.Decimal("NaN"), "NaN"),
    (2**70, 2**70),
    (float("inf"), "inf"),
    (dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC), "2024-05-01T12:00:00+00:00"),
    (dt.date(2024, 5, 1), "2024-05-01"),
    (dt.timedelta(days=2, seconds=30), "P2DT30S"),
    (dt.timedelta(seconds=-1.5), "-PT1.5S"),
    (b"\x00\xff", "AP8="),
    (memoryview(b"ab"), "YWI="),
    (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
    ([1, decimal.Decimal("2.5"), None], [1, "2.5", None]),
    ({"k": dt.date(2020, 1, 2)}, {"k": "2020-01-02"}),
])
def test_values_render_to_json_without_loss(value, expected):
    assert to_json_value(value) == expected
