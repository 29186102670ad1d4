"""``python -m devhost serve``: serve function_app.py on 127.0.0.1 (HTTP functions, and Durable
Functions when the app has orchestrators, activities or durable clients)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the Function app's HTTP functions")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=7071)
    serve.add_argument("--app", default="function_app", help="module that defines `app`")
    serve.add_argument("--verbose", action="store_true")
    serve.add_argument("--no-timers", action="store_true", help="do not run timer functions on their schedule")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)
    from devhost.durable import start_for
    from devhost.server import serve as make_server
    from devhost.timers import attach_timers

    server = make_server(args.host, args.port, args.app)
    try:
        engine = start_for(server)
    except Exception:
        server.server_close()
        raise
    timers = attach_timers(server, schedule=not args.no_timers)
    stopping = threading.Event()

    def stop(signum: int, frame: object) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logging.getLogger("devhost").info("serving %s on %s", args.app, server.base_url)
    server.serve_forever()
    timers.stop()
    log = logging.getLogger("devhost")
    log.info("stopping")
    if engine is not None:
        engine.stop()  # running activities and episodes finish first
    server.server_close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
