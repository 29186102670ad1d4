from tests.targets.conftest import maria, pg  # noqa: F401  (the real databases)
