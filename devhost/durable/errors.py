"""Errors of the management operations, mapped to the extension's HTTP answers by :mod:`api`."""

from __future__ import annotations


class BadRequest(ValueError):
    """400: the request names something invalid (the extension's ArgumentException)."""

    title = "One or more of the arguments submitted is incorrect"


class NotFound(LookupError):
    """404: no such instance."""


class Conflict(RuntimeError):
    """An instance with this id is still running (the extension answers 500)."""
