"""The OpenAPI document is valid and documents every HTTP function the app registers."""

from __future__ import annotations

from pathlib import Path

import yaml
from openapi_spec_validator import validate

import function_app

SPEC = yaml.safe_load((Path(__file__).resolve().parents[2] / "broker/api/openapi.yaml").read_text())


def test_the_document_is_valid_openapi():
    validate(SPEC)


def test_every_registered_route_and_method_is_documented():
    documented = {(path.strip("/"), method.upper()) for path, ops in SPEC["paths"].items() for method in ops}
    registered = set()
    # A FunctionApp lets get_functions() run once (it then refuses the names as duplicates), and the
    # worker-indexing tests may have used that already: forget the names it has seen.
    function_app.app.functions_bindings = {}
    for fn in function_app.app.get_functions():
        trigger = fn.get_trigger()
        if trigger.get_binding_name() != "httpTrigger" or trigger.route.startswith("admin/"):
            continue
        route = trigger.route.replace("{id:guid}", "{id}")
        for method in trigger.methods:
            registered.add((route, str(getattr(method, "value", method)).upper()))
    assert registered and registered <= documented, registered - documented
