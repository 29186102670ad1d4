"""What the guard found decides whether an SQL change may be tried before approval at all: a
function with an effect a rollback does not undo (sequences, notifications, locks, other
connections, code the broker cannot inspect) refuses the trial; a plain row change does not."""

from __future__ import annotations

import pytest

from broker.guard.sql import classify_sql
from broker.impact import trial_refusal


@pytest.mark.parametrize(("dialect", "sql", "why"), [
    ("postgres", "UPDATE customers SET phone = nextval('order_ids')::text WHERE id = 3", "sequence"),
    ("postgres", "UPDATE customers SET phone = setval('order_ids', 1)::text WHERE id = 3", "sequence"),
    ("postgres", "UPDATE customers SET phone = pg_notify('c', 'x')::text WHERE id = 3", "notification"),
    ("postgres", "UPDATE customers SET phone = pg_advisory_lock(1)::text WHERE id = 3", "lock"),
    ("postgres", "UPDATE customers SET phone = (SELECT x FROM dblink('host=x', 'DELETE FROM t RETURNING 1') "
                 "AS t(x text)) WHERE id = 3", "dblink"),
    ("postgres", "UPDATE customers SET phone = my_audit(phone) WHERE id = 3", "my_audit"),
    ("postgres", "UPDATE customers SET phone = lo_import('/etc/passwd')::text WHERE id = 3", "lo_import"),
    ("mysql", "UPDATE customers SET phone = NEXTVAL(s) WHERE id = 3", "sequence"),
    ("mysql", "UPDATE customers SET phone = GET_LOCK('x', 10) WHERE id = 3", "lock"),
    ("mysql", "UPDATE customers SET phone = my_audit(phone) WHERE id = 3", "my_audit"),
])
def test_a_function_with_effects_refuses_the_trial(dialect, sql, why):
    assert why in trial_refusal(classify_sql(sql, dialect)).lower()


@pytest.mark.parametrize(("dialect", "sql"), [
    ("postgres", "UPDATE customers SET phone = NULL WHERE id = 3"),
    ("postgres", "UPDATE customers SET notes = upper(notes) || now()::text WHERE id = 3"),
    ("postgres", "DELETE FROM customers WHERE id = 3 RETURNING id"),
    ("mysql", "UPDATE customers SET notes = CONCAT(UPPER(notes), NOW()) WHERE id = 3"),
])
def test_a_plain_row_change_may_be_tried(dialect, sql):
    assert trial_refusal(classify_sql(sql, dialect)) == ""
