"""Fixtures for the masking tests: one masker per scanner (Hyperscan and re), same key."""

from __future__ import annotations

import importlib.util

import pytest

from broker.masking import Masker

KEY = b"masking-test-key-0123456789"
SCANNERS = ["hyperscan", "re"] if importlib.util.find_spec("hyperscan") else ["re"]


@pytest.fixture(scope="session", params=SCANNERS)
def masker(request: pytest.FixtureRequest) -> Masker:
    return Masker(KEY, scanner=request.param)


@pytest.fixture(scope="session")
def auto_masker() -> Masker:
    return Masker(KEY)
