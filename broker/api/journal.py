"""The journal feature: ``GET /api/journal`` for auditors, and the timer that seals the chains.

``GET /api/journal`` takes the CLI's queries as parameters (``since``, ``until``, ``session``,
``identity``, ``request``, ``event``, ``target``, ``limit``; ``format=replay`` for the terminal
text). Only callers with the ``Broker.Auditor`` app role; every query is itself journaled.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING

import azure.functions as func

from broker.api._http import authenticated, call_context, json_response
from broker.problems import BadRequest
from broker.runtime import get_broker

if TYPE_CHECKING:  # the domain loads with the broker (first call), not when the host indexes the app
    from broker.identity import Principal
    from broker.runtime import Broker

log = logging.getLogger("broker.api")

bp = func.Blueprint()
DEFAULT_LIMIT = 500
SEAL_SCHEDULE = "0 */5 * * * *"  # NCRONTAB: every five minutes


@bp.route(route="journal", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@authenticated
def journal(req: func.HttpRequest, broker: Broker, principal: Principal) -> func.HttpResponse:
    from broker.journal import JournalQuery, JournalReader, replay_text, require_auditor
    from broker.journal.events import Subject, journal_read

    require_auditor(principal)
    params = dict(req.params)
    view = params.get("format", "json")
    if view not in ("json", "replay"):
        raise BadRequest("'format' is json or replay.", code="invalid_query")
    query = JournalQuery.from_params(params)
    if query.limit is None:
        query = replace(query, limit=DEFAULT_LIMIT)
    records = JournalReader(broker.journal_storage).query(query)
    broker.journal.write(journal_read(Subject(
        request_id=str(uuid.uuid4()), principal=principal.describe(), command={"query": query.describe(),
                                                                               "format": view},
        client=call_context(req).to_dict()), {"status": "ok", "records": len(records)}))
    if view == "replay":
        title = " ".join(f"{k} {v}" for k, v in query.describe().items() if k != "limit")
        return func.HttpResponse(replay_text(records, title), status_code=200, mimetype="text/plain",
                                 charset="utf-8", headers={"Cache-Control": "no-store"})
    return json_response({"query": query.describe(), "count": len(records),
                          "limited": len(records) == query.limit, "records": [r.to_dict() for r in records]})


@bp.timer_trigger(arg_name="timer", schedule=SEAL_SCHEDULE, run_on_startup=False, use_monitor=True)
def journal_seal(timer: func.TimerRequest) -> None:
    """Seal the chains (a singleton in Azure: the host runs one timer instance app-wide)."""
    from broker.journal import Sealer

    broker = get_broker()
    seal = Sealer(broker.journal_storage, journal=broker.journal).seal()
    if seal is not None:
        log.info("journal sealed %s (%d records)%s", seal.name, seal.records,
                 " after a missed schedule" if timer.past_due else "")
