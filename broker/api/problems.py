"""``GET /api/problems`` and ``GET /api/problems/{code}``: where a problem's ``type`` URI leads.

No authentication: the pages describe the contract, not the deployment. Built from the one
catalogue (``broker.problem_codes``); an unknown code is 404 like any unknown path.
"""

from __future__ import annotations

import html

import azure.functions as func

from broker.api._http import json_response, problem_response
from broker.problem_codes import CODES
from broker.problems import NotFound

bp = func.Blueprint()
_HEADERS = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'"}


@bp.route(route="problems", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def problem_index(req: func.HttpRequest) -> func.HttpResponse:
    return json_response({"problems": [{"code": e.code, "statuses": list(e.statuses), "meaning": e.meaning,
                                        "action": e.action} for e in CODES.values()]},
                         headers={"Cache-Control": "public, max-age=3600"})


@bp.route(route="problems/{code}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def problem_page(req: func.HttpRequest) -> func.HttpResponse:
    entry = CODES.get(req.route_params.get("code", ""))
    if entry is None:
        return problem_response(NotFound("No such problem code.", code="not_found",
                                         remedy="GET /api/problems lists them all."))
    if "application/json" in (req.headers.get("accept") or ""):
        return json_response({"code": entry.code, "statuses": list(entry.statuses), "meaning": entry.meaning,
                              "action": entry.action}, headers={"Cache-Control": "public, max-age=3600"})
    code, meaning, action = (html.escape(x) for x in (entry.code, entry.meaning, entry.action))
    page = (f"<!doctype html><html lang=en><meta charset=utf-8><title>{code}</title>"
            f"<h1>{code}</h1><p>HTTP {'/'.join(map(str, entry.statuses))}</p>"
            f"<h2>What it means</h2><p>{meaning}</p><h2>What to do</h2><p>{action}</p></html>")
    return func.HttpResponse(page, status_code=200, mimetype="text/html", charset="utf-8", headers=_HEADERS)
