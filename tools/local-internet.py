#!/usr/bin/env python3
"""tools/local-internet.py -- the local cluster's "outside host" (a stand-in for the internet).

Started by tools/local-cluster.sh (see tools/local-network.sh): with separate hosts inside
the `ot-internet` network namespace, which only the login node's namespace can reach;
in loopback mode on 127.0.0.1. Python's standard library only.

    python3 tools/local-internet.py --bind ADDR --port PORT --name ot-internet

GET /egress answers 200 with one line, "ot-hpc egress ok: <name> <addr>:<port> answered
<client>", so a job that fetched it knows which host answered and from where the request
came (through the tunnel: the login node's address on the internet link). Every other
path is 404. Each request is one line on stderr (the cluster's log directory).
"""
from __future__ import annotations

import argparse
import http.server
import sys

BODY_PREFIX = "ot-hpc egress ok"


def make_handler(name: str, bind: str, port: int):
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "ot-hpc-internet/1"

        def do_GET(self):  # noqa: N802 - http.server's naming
            client = self.client_address[0]
            if self.path.split("?")[0] != "/egress":
                self.answer(404, f"not found: {self.path}\n")
                return
            self.answer(200, f"{BODY_PREFIX}: {name} {bind}:{port} answered {client}\n")

        def answer(self, code: int, text: str) -> None:
            body = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):
            sys.stderr.write(f"{self.log_date_time_string()} {self.client_address[0]} {fmt % args}\n")
            sys.stderr.flush()

    return Handler


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bind", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="ot-internet")
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer((args.bind, args.port),
                                             make_handler(args.name, args.bind, args.port))
    server.daemon_threads = True
    sys.stderr.write(f"serving {args.name} on http://{args.bind}:{args.port}/egress\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
