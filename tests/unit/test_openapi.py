"""The OpenAPI document is valid and documents every HTTP function the app registers."""

from __future__ import annotations

from pathlib import Path

import yaml
from openapi_spec_validator import validate

import function_app
from broker.api import methods

SPEC = yaml.safe_load((Path(__file__).resolve().parents[2] / "broker/api/openapi.yaml").read_text())


def test_the_document_is_valid_openapi():
    validate(SPEC)


def registered_routes() -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(route, method) of the app's HTTP functions: those that serve, and the 405 refusals (methods.py)."""
    serving, refusing = set(), set()
    # A FunctionApp lets get_functions() run once (it then refuses the names as duplicates), and the
    # worker-indexing tests may have used that already: forget the names it has seen.
    function_app.app.functions_bindings = {}
    for fn in function_app.app.get_functions():
        trigger = fn.get_trigger()
        if trigger.get_binding_name() != "httpTrigger" or trigger.route.startswith("admin/"):
            continue
        found = refusing if fn.get_function_name().startswith("method_not_allowed_") else serving
        route = trigger.route.replace("{id:guid}", "{id}")
        for method in trigger.methods:
            found.add((route, str(getattr(method, "value", method)).upper()))
    return serving, refusing


def test_every_registered_route_and_method_is_documented():
    documented = {(path.strip("/"), method.upper()) for path, ops in SPEC["paths"].items() for method in ops}
    serving, _ = registered_routes()
    assert serving and serving <= documented, serving - documented


def test_every_route_refuses_the_methods_it_does_not_serve_itself():
    """Azure answers a method a route does not take with a bare 404: every route registers a 405
    with Allow for the rest of GET/POST/PUT/PATCH/DELETE, and none is left out or taken twice."""
    serving, refusing = registered_routes()
    routes = {route for route, _ in serving}
    assert routes == set(methods.SERVED)
    assert not serving & refusing
    for route in routes:
        taken = {m for r, m in serving | refusing if r == route}
        assert taken >= set(methods.METHODS), (route, set(methods.METHODS) - taken)
        served = {m for r, m in serving if r == route} - set(methods.OWN_REFUSALS.get(route, ()))
        assert served == set(methods.SERVED[route]), route
        documented = {m.upper() for m in SPEC["paths"]["/" + route]} - set(methods.OWN_REFUSALS.get(route, ()))
        assert documented == served, route
