"""Policy as code: who may run what on which target, decided by a rule that can be named.

A YAML file (``config/examples/policy.yaml``; language in ``docs/policy.md``, JSON Schema in
``policy.schema.json``) validated at start-up: an invalid policy stops the broker with every
problem listed. Every decision carries the rule that decided, the policy version (hash of the
file) and a trace. Effects rank deny > approve > allow; no matching rule means deny.

    model.py     the language as typed models (limits, approval, match, rule, grant coverage)
    loader.py    YAML + JSON Schema + model validation, version hash, precise errors
    match.py     does a rule's ``when``/``unless`` hold, and if not, why not (the trace)
    grants.py    just-in-time grants as the policy sees them
    decision.py  ``Policy.decide`` and ``Decision``
    lint.py      warnings ``policy check`` prints for valid but suspicious policies
"""

from __future__ import annotations

from broker.policy.decision import Decision, Policy
from broker.policy.grants import Grant
from broker.policy.loader import PolicyError
from broker.policy.model import (
    AccessLevel,
    ApprovalRequirement,
    Effect,
    GrantCoverage,
    KubernetesMatch,
    Limits,
    Match,
    PolicyDocument,
    Rule,
)

__all__ = ["AccessLevel", "ApprovalRequirement", "Decision", "Effect", "Grant", "GrantCoverage", "KubernetesMatch",
           "Limits", "Match", "Policy", "PolicyDocument", "PolicyError", "Rule"]
