"""host.json against the schema written down in devhost/schemas/host.schema.json (from Microsoft's
host.json reference), and the settings Flex Consumption needs for Durable Functions."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from infra_bicep import resource

from broker.policy.model import MAX_STATEMENT_TIMEOUT_MS
from devhost.durable.settings import EngineSettings, SettingsError
from devhost.host_json import HostJsonError, load_host_json, problems

ROOT = Path(__file__).resolve().parents[2]
HOST = json.loads((ROOT / "host.json").read_text())


def timespan_seconds(text: str) -> float:
    match = re.fullmatch(r"(?:(\d+)\.)?(\d{2}):(\d{2}):(\d{2}(?:\.\d+)?)", text)
    assert match, text
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def test_the_apps_host_json_is_valid() -> None:
    assert problems(HOST) == []
    assert problems(json.loads((ROOT / "tests/devhost/host.json").read_text())) == []


def _with(path: str, value: object) -> dict:
    document = copy.deepcopy(HOST)
    *parents, last = path.split(".")
    node = document
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return document


@pytest.mark.parametrize(("path", "value", "message"), [
    ("version", "1.0", "'2.0' was expected"),
    ("functionTimeout", "5 minutes", "is not valid under any of the given schemas"),
    ("functionTimeout", "00:61:00", "is not valid under any of the given schemas"),
    ("extensions.durableTask.storageProvider.maxQueuePolingInterval", "00:00:10",
     "'maxQueuePolingInterval' was unexpected"),
    ("extensions.durableTask.storageProvider.maxQueuePollingInterval", "10s", "does not match"),
    ("extensions.durableTask.storageProvider.partitionCount", 32, "32 is greater than the maximum of 16"),
    ("extensions.durableTask.hubname", "x", "'hubname' was unexpected"),
    ("extensions.durableTask.maxConcurrentActivityFunctions", 0, "0 is less than the minimum of 1"),
    ("extensions.http.routeprefix", "api", "'routeprefix' was unexpected"),
    ("extensionBundle.version", "4.*", "does not match"),
    ("logging.logLevel.default", "Info", "is not one of"),
    ("functionTimeouts", "00:05:00", "'functionTimeouts' was unexpected"),
])
def test_misspelt_or_mistyped_settings_are_refused(path: str, value: object, message: str) -> None:
    found = problems(_with(path, value))
    assert any(message in line for line in found), found


def test_the_devhost_refuses_to_start_on_a_host_json_azure_would_misread(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(json.dumps(_with("extensions.durableTask.hubname", "x")))
    with pytest.raises(HostJsonError, match="hubname"):
        load_host_json(tmp_path)
    with pytest.raises(SettingsError, match="would not work on Azure"):
        EngineSettings.from_host(tmp_path, {"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    (tmp_path / "host.json").write_text("{ not json")
    with pytest.raises(HostJsonError, match="not valid JSON"):
        load_host_json(tmp_path)


def test_durable_polls_its_queues_at_most_every_10_seconds() -> None:
    interval = HOST["extensions"]["durableTask"]["storageProvider"]["maxQueuePollingInterval"]
    assert timespan_seconds(interval) <= 10


def test_the_function_timeout_covers_the_longest_statement_and_fits_flex() -> None:
    timeout = timespan_seconds(HOST["functionTimeout"])
    # an approved run is an activity: the longest statement the policy allows must fit, with margin
    assert timeout >= MAX_STATEMENT_TIMEOUT_MS / 1000 + 60
    assert timeout <= 4 * 3600  # Flex Consumption's guaranteed execution window (60 min default)


def test_one_durable_instance_is_always_ready_on_flex() -> None:
    site = resource("Microsoft.Web/sites")
    scale = site.body["properties"]["functionAppConfig"]["scaleAndConcurrency"]
    assert {"name": "durable", "instanceCount": 1} in scale["alwaysReady"]
