from tests.journal.conftest import azurite  # noqa: F401  (a real Azurite for the classification store)
from tests.targets.conftest import maria, pg  # noqa: F401  (the real databases)
