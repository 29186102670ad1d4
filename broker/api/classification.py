"""The data classification timer: samples every SQL target for sensitive columns on
``%BROKER_CLASSIFICATION_SCHEDULE%`` (``broker/classification``). No HTTP route: operators run
``python -m broker data classify TARGET`` by hand and read results with ``data show``."""

from __future__ import annotations

import logging

import azure.functions as func

from broker.problems import BrokerError
from broker.runtime import get_broker

log = logging.getLogger("broker.api")

bp = func.Blueprint()
TIMER_PRINCIPAL = {"kind": "timer", "display_name": "data_classify timer", "object_id": "", "tenant_id": ""}


@bp.timer_trigger(arg_name="timer", schedule="%BROKER_CLASSIFICATION_SCHEDULE%", run_on_startup=False,
                  use_monitor=True)
def data_classify(timer: func.TimerRequest) -> None:
    """Classify every SQL target in turn; one target that fails (journaled) does not stop the others."""
    classifier = get_broker().classifier
    for target in classifier.targets():
        try:
            run = classifier.classify(target.name, TIMER_PRINCIPAL)
        except BrokerError as failure:
            log.warning("classification of %s failed: %s", target.name, failure.code)
            continue
        log.info("classified %s: %d columns, %d sensitive%s", target.name, len(run.columns), len(run.sensitive),
                 " after a missed schedule" if timer.past_due else "")
