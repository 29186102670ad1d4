"""``policy``: check a policy file, or explain the decision it gives for one command.

    python -m broker policy check config/examples/policy.yaml
    python -m broker policy explain --identity devin --target demo-postgres --sql "DELETE FROM orders WHERE id = 1"
    python -m broker policy explain --role Broker.Caller --group dba --target orders-db --label env=prod --risk write

``explain`` prints the effect, the deciding rule, the policy version and the trace (every rule, and
why it matched or not). The identity is a dev identity name (devin, approver, ...) and/or
``--role``/``--group``/``--tenant``/``--object-id``; the target comes from the catalog, or is
described with ``--engine`` and ``--label``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from broker.guard.languages import CommandLanguage


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("policy", help="check a policy file or explain a decision", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    check = actions.add_parser("check", help="validate a policy file (exit 1 when invalid)",
                               description="Validate a policy file against the language and its JSON Schema; "
                                           "print its version and any warnings.")
    check.add_argument("file", type=Path, help="the policy YAML file")
    check.add_argument("--strict", action="store_true", help="treat warnings as errors")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.set_defaults(func=run_check)

    explain = actions.add_parser("explain", help="print the decision and why", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    explain.add_argument("--policy", type=Path, help="policy file (default: BROKER_POLICY_PATH or "
                                                     "config/examples/policy.yaml)")
    explain.add_argument("--identity", help="a dev identity name: devin, approver, approver2, auditor, operator, "
                                            "outsider")
    explain.add_argument("--role", action="append", default=[], help="an app role of the caller (repeatable)")
    explain.add_argument("--group", action="append", default=[], help="a group of the caller (repeatable)")
    explain.add_argument("--tenant", default="", help="the caller's tenant id")
    explain.add_argument("--object-id", default="", help="the caller's object id")
    explain.add_argument("--app-id", default="", help="the calling application's client id")
    explain.add_argument("--target", required=True, help="target name")
    explain.add_argument("--catalog", type=Path, help="catalog file to find the target in (default: "
                                                      "BROKER_CATALOG_PATH, then the dev stack's)")
    explain.add_argument("--engine", help="the target's engine when it is not in the catalog (default postgres)")
    explain.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                         help="a target label when the target is not in the catalog (repeatable)")
    what = explain.add_mutually_exclusive_group(required=True)
    what.add_argument("--sql", help="the SQL statement to decide on")
    what.add_argument("--risk", help="decide for a risk class instead of a statement (e.g. write, exec)")
    explain.add_argument("--dialect", help="SQL dialect (default: the target engine's)")
    explain.add_argument("--grant", choices=["read", "write"], help="pretend the caller holds an active grant")
    explain.add_argument("--json", action="store_true", help="print the decision as JSON")
    explain.set_defaults(func=run_explain)


def run_check(args: argparse.Namespace) -> int:
    from broker.policy import Policy, PolicyError
    from broker.policy.lint import lint

    try:
        policy = Policy.load(args.file)
    except PolicyError as error:
        if args.json:
            print(json.dumps({"valid": False, "file": str(args.file), "error": str(error)}))
        else:
            print(str(error), file=sys.stderr)
        return 1
    warnings = lint(policy.document)
    if args.json:
        print(json.dumps({"valid": True, "file": str(args.file), "version": policy.version,
                          "rules": len(policy.document.rules), "warnings": warnings}))
    else:
        print(f"OK  {args.file}: {len(policy.document.rules)} rule(s), version {policy.version}")
        for warning in warnings:
            print(f"warning: {warning}")
    return 1 if args.strict and warnings else 0


def run_explain(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from broker.guard import Classification, Risk
    from broker.guard.sql import classify_sql
    from broker.policy import Grant, Policy, PolicyError
    from broker.settings import Settings

    settings = Settings()
    try:
        policy = Policy.load(args.policy or settings.policy_path)
        principal = _principal(args)
        target = _target(args, settings)
    except (PolicyError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.sql is not None:
        classification = classify_sql(args.sql, args.dialect or _dialect(target.engine))
    else:
        try:
            risk = Risk(args.risk)
        except ValueError:
            print(f"error: unknown risk class {args.risk!r} (one of {', '.join(r.value for r in Risk)})",
                  file=sys.stderr)
            return 1
        classification = Classification(risk, "given with --risk", _language(target.engine).kind)
    grants = [Grant.for_principal(principal, target.name, args.grant, datetime.now(UTC) + timedelta(hours=1),
                                  "cli-pretend")] if args.grant else []
    decision = policy.decide(principal, target, classification, grants=grants)
    if args.json:
        print(json.dumps({"classification": classification.to_dict(), "decision": decision.to_dict()},
                         ensure_ascii=False, indent=2))
    else:
        print(render_explanation(classification.to_dict(), decision.to_dict()))
    return 0


def render_explanation(classification: dict[str, Any], decision: dict[str, Any]) -> str:
    lines = [f"effect          {decision['effect'].upper()}",
             f"rule            {decision['rule_id'] or '(none: no rule matched)'}",
             f"policy version  {decision['policy_version']}",
             f"reason          {decision['reason']}",
             f"command         risk {classification['risk']}: {classification['reason']}"]
    if decision.get("remedy"):
        lines.append(f"remedy          {decision['remedy']}")
    if decision.get("approval"):
        a = decision["approval"]
        lines.append(f"approval        quorum {a['quorum']} from groups {', '.join(a['groups']) or '-'} / "
                     f"roles {', '.join(a['roles']) or '-'}, within {a['timeout_seconds']} s")
    if decision.get("grant_id"):
        lines.append(f"grant           {decision['grant_id']}")
    limits = decision["limits"]
    lines.append("limits          " + ", ".join(f"{k}={v}" for k, v in limits.items() if v is not None))
    lines.append("trace")
    lines += [f"  {step}" for step in decision["trace"]]
    return "\n".join(lines)


def _principal(args: argparse.Namespace) -> Any:
    from broker.identity import Principal

    roles, groups = set(args.role), set(args.group)
    tenant, object_id, app_id, kind, name = args.tenant, args.object_id, args.app_id, "user", "explain"
    if args.identity:
        from devhost.identities import DEV_TENANT, IDENTITIES

        dev = IDENTITIES.get(args.identity)
        if dev is None:
            raise ValueError(f"no dev identity {args.identity!r} (known: {', '.join(IDENTITIES)}); "
                             "or describe the caller with --role/--group")
        roles |= set(dev.roles)
        groups |= set(dev.groups)
        tenant, object_id = tenant or DEV_TENANT, object_id or dev.object_id
        app_id, kind, name = app_id or dev.app_id, dev.kind, dev.display_name
    elif not (roles or groups or tenant or object_id):
        raise ValueError("say who is calling: --identity NAME, or --role/--group/--tenant/--object-id")
    return Principal(tenant_id=tenant or "explain-tenant", object_id=object_id or "explain-object",
                     app_id=app_id, display_name=name, kind=kind, roles=frozenset(roles),
                     groups=frozenset(groups))


def _target(args: argparse.Namespace, settings: Any) -> Any:
    from broker.catalog import CatalogError, Target, load_catalog
    from broker.settings import ClientSettings

    candidates = [args.catalog] if args.catalog else [settings.catalog_path,
                                                      ClientSettings().dev_state_dir / "catalog.yaml"]
    for path in candidates:
        if path and Path(path).exists():
            try:
                catalog = load_catalog(Path(path))
            except CatalogError as error:
                raise ValueError(str(error)) from error
            if args.target in catalog.targets:
                if args.label or args.engine:
                    raise ValueError(f"target {args.target} is in {path}; --engine/--label only describe "
                                     "targets that are not")
                return catalog.targets[args.target]
    labels = {}
    for item in args.label:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--label wants KEY=VALUE, not {item!r}")
        labels[key] = value
    from broker.targets import ENGINES

    engine = args.engine or "postgres"
    entry = ENGINES.get(engine)
    # the policy reads name, engine and labels only: a described target has no server to connect to
    connection = entry.settings.model_construct() if entry is not None else None
    return Target(name=args.target, engine=engine, labels=labels, connection=connection,
                  credential={"source": "key-vault", "secret": "not-used"})


def _dialect(engine: str) -> str:
    from broker.targets import ENGINES

    entry = ENGINES.get(engine)
    return entry.dialect if entry is not None else engine


def _language(engine: str) -> CommandLanguage:
    from broker.guard.languages import SQL
    from broker.targets import ENGINES

    entry = ENGINES.get(engine)
    return entry.language if entry is not None else SQL
