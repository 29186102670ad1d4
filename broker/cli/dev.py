"""``dev``: start the local stack — Azurite, embedded PostgreSQL with the demo target, the local
OIDC issuer and managed-identity endpoint, the local Key Vault, and the devhost serving the
broker on 127.0.0.1:7071 — print what is where, and stop it all on Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dev", help="run the broker with its local stack and a demo target", description=__doc__)
    p.add_argument("--demo", action="store_true", default=True,
                   help="seed the demo target demo-postgres (the default)")
    p.add_argument("--port", type=int, default=7071, help="the broker's port (default 7071)")
    p.add_argument("--state", type=Path, default=Path(".broker/dev"), help="state folder (default .broker/dev)")
    p.add_argument("--reset", action="store_true", help="delete the state folder first (fresh data and keys)")
    p.add_argument("--free-ports", action="store_true",
                   help="pick free ports for every service (to run beside another stack); clients find them "
                        "through STATE/stack.json (set BROKER_DEV_STATE_DIR when STATE is not the default)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import shutil
    import time

    from devhost.stack import DevStack, Ports

    if args.reset and args.state.exists():
        shutil.rmtree(args.state)
    ports = Ports.free() if args.free_ports else Ports(devhost=args.port)
    busy = ports.busy()
    if busy:
        print(f"cannot start: ports already in use: {', '.join(busy)} "
              "(is another dev stack running? stop it, or pass --port)")
        return 1
    stack = DevStack(args.state, ports)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    started = time.monotonic()
    print("starting the dev stack …", flush=True)
    try:
        stack.start()
        d = stack.describe()
        # The host answers before the broker is built (imports, the masking prefilter, the
        # catalogue): build it now, so "ready" means the first call is not the slow one.
        health = _warm(f"{d['broker_url']}/api/health")
        print(f"""
dev stack ready in {time.monotonic() - started:.1f}s
  broker          {d['broker_url']}/api   (health: {d['broker_url']}/api/health: {health})
  OIDC issuer     {d['issuer_url']}   tenant {d['tenant']}
  Key Vault       {d['key_vault_url']}   (TLS; CA bundle {d['ca_bundle']})
  Azurite         blob {d['azurite']['blob']}  queue {d['azurite']['queue']}  table {d['azurite']['table']}
  PostgreSQL      {d['postgres']}   (target demo-postgres)
  Kubernetes      {d['kubernetes']}   (target demo-k8s: kmock stand-in, namespace demo)
  state           {d['state_dir']}   logs: devhost.log, postgres/server.log
  mail            {d['mail_dir']}   (approval emails as .eml; SMTP {d['smtp']})

try it (in another shell):
  python -m broker exec --target demo-postgres --sql "SELECT * FROM customers LIMIT 5"
  python -m broker kubectl --target demo-k8s get pods -n demo
  python -m broker kubectl --target demo-k8s get secret db-credentials -n demo -o yaml
  python -m broker journal list --last 5
  python -m broker token --dev --identity devin

Ctrl-C stops everything.""", flush=True)
        while not stopping.wait(1.0):
            if stack.devhost and stack.devhost.poll() is not None:
                print(f"devhost exited (code {stack.devhost.returncode}); see {d['state_dir']}/devhost.log")
                return 1
    finally:
        print("stopping …", flush=True)
        stack.stop()
        (args.state / "stack.json").unlink(missing_ok=True)
    print("stopped.")
    return 0


def _warm(url: str, timeout: float = 120.0) -> str:
    """The broker's health status after its first (building) call, or why there is none."""
    import httpx

    try:
        return str(httpx.get(url, timeout=timeout).json().get("status", "unknown"))
    except (httpx.HTTPError, ValueError) as exc:
        return f"not answering ({type(exc).__name__})"
