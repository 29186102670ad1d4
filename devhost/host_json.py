"""host.json as the Functions host reads it: validated before anything starts.

The host refuses a host.json it cannot parse or whose ``version`` is not "2.0", and silently ignores
a misspelt setting (a typo in ``maxQueuePollingInterval`` leaves Durable polling every 30 s).
The devhost refuses both (``schemas/host.schema.json``, written for this project from Microsoft's
host.json reference), so a configuration that would misbehave on Azure fails here first.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_PATH = Path(__file__).with_name("schemas") / "host.schema.json"


class HostJsonError(ValueError):
    """host.json would not work on Azure as written."""


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))


def problems(document: Any) -> list[str]:
    """Every way ``document`` departs from the schema, as ``place: message`` lines."""
    found = sorted(_validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '(top level)'}: {e.message}" for e in found]


def load_host_json(app_root: Path) -> dict[str, Any]:
    """The app's host.json (``{}`` when there is none, as for a bare test app), validated."""
    path = app_root / "host.json"
    if not path.exists():
        return {}
    try:
        document = json.loads(path.read_text())
    except ValueError as exc:
        raise HostJsonError(f"{path}: not valid JSON ({exc})") from exc
    found = problems(document)
    if found:
        raise HostJsonError(f"{path} would not work on Azure:\n  - " + "\n  - ".join(found))
    return document
