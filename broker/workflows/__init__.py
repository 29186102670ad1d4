"""Durable Functions workflows: the approval wait and the just-in-time grant.

Orchestrators here are pure generators (no I/O, no clock, no randomness: they are replayed);
every side effect is an activity that calls the domain (``broker.approvals``, ``broker.grants``,
``broker.execute``). Like ``broker.api``, this package may import ``azure.functions``; the
domain never does.
"""
