"""How the engine reads host.json and the devhost's environment (fail closed on bad settings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devhost.durable.settings import EngineSettings, SettingsError


def app_root(tmp_path: Path, durable: dict, **host: object) -> Path:
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0", "extensions": {"durableTask": durable},
                                                    **host}))
    return tmp_path


def test_hub_name_and_limits_come_from_host_json(tmp_path: Path) -> None:
    root = app_root(tmp_path, {"hubName": "%HUB%", "maxConcurrentActivityFunctions": 3},
                    functionTimeout="00:02:30")
    settings = EngineSettings.from_host(root, {"HUB": "brokerhub", "AzureWebJobsStorage": "UseDevelopmentStorage=true",
                                               "DEVHOST_DURABLE_CLOCK": "manual", "DEVHOST_DURABLE_KEY": "k"})
    assert settings.task_hub == "brokerhub"
    assert settings.activity_workers == 3 and settings.function_timeout == 150
    assert settings.clock == "manual" and settings.system_key == "k"
    assert "TableEndpoint=http://127.0.0.1:10002" in settings.connection_string


@pytest.mark.parametrize(("durable", "env", "problem"), [
    ({"hubName": "%HUB%"}, {"AzureWebJobsStorage": "x"}, "HUB"),
    ({"hubName": "my-hub"}, {"AzureWebJobsStorage": "x"}, "invalid"),
    ({"hubName": "hub1"}, {}, "AzureWebJobsStorage"),
    ({"hubName": "hub1", "storageProvider": {"connectionStringName": "Other"}}, {"AzureWebJobsStorage": "x"}, "Other"),
    ({"hubName": "hub1"}, {"AzureWebJobsStorage": "x", "DEVHOST_DURABLE_CLOCK": "fast"}, "DEVHOST_DURABLE_CLOCK"),
])
def test_unusable_settings_are_refused(tmp_path: Path, durable: dict, env: dict, problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        EngineSettings.from_host(app_root(tmp_path, durable), env)
