"""``tidelog serve``: a log served over Arrow Flight until SIGTERM or SIGINT
(tidelog.flight)."""
from __future__ import annotations

import argparse
import os
import sys

DESCRIPTION = """\
Serves the topics of a log folder over Arrow Flight: DoGet streams ranges of a
topic (offsets, times, columns, a filter), DoPut appends record batches and
acknowledges each once it is durable, ListFlights lists the topics. Stops on
SIGTERM or SIGINT: streams end at their next batch, the log is flushed and
closed. The address defaults to 127.0.0.1 (this machine only); any other
address needs --token (and should have TLS), or --insecure-bind on a network
you trust, since without a token anyone who reaches the port can read and
append to every topic.

examples:
  tidelog serve data/ --flight                        # 127.0.0.1:8815
  tidelog serve data/ --flight 127.0.0.1:0 --read-only
  tidelog serve data/ --flight 0.0.0.0:8815 --token-file token.txt
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..flight import DEFAULT_MAX_BATCH_BYTES, DEFAULT_SHUTDOWN_GRACE_S

    parser.add_argument("path", help="the log folder (created if missing, unless --read-only)")
    parser.add_argument("--flight", metavar="HOST:PORT", nargs="?", const="127.0.0.1:8815", required=True,
                        help="serve Arrow Flight on HOST:PORT (default 127.0.0.1:8815; port 0: any free port, "
                             "printed at start)")
    auth = parser.add_mutually_exclusive_group()
    auth.add_argument("--token", help="require 'authorization: Bearer TOKEN' on every call (other users of the "
                                      "machine can see a command line: prefer --token-file)")
    auth.add_argument("--token-file", metavar="FILE", help="read the token from FILE (its first line)")
    parser.add_argument("--tls-cert", metavar="PEM", help="serve over TLS with this certificate (chain)")
    parser.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    parser.add_argument("--insecure-bind", action="store_true",
                        help="allow an address other than loopback without a token")
    parser.add_argument("--read-only", action="store_true", help="open the log read-only: DoPut is refused")
    parser.add_argument("--max-batch-bytes", type=int, default=DEFAULT_MAX_BATCH_BYTES, metavar="N",
                        help=f"the largest record batch DoPut takes (default {DEFAULT_MAX_BATCH_BYTES >> 20} MiB)")
    parser.add_argument("--shutdown-grace", type=float, default=DEFAULT_SHUTDOWN_GRACE_S, metavar="SECONDS",
                        help="how long a stop waits for calls in progress (default %(default)s)")


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file is None:
        return args.token
    with open(args.token_file, encoding="utf-8") as f:
        lines = f.read().splitlines()
    token = lines[0].strip() if lines else ""
    if not token:
        raise ValueError(f"the token file {args.token_file} is empty")
    return token


def _tls(args: argparse.Namespace) -> list[tuple[bytes, bytes]] | None:
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    if args.tls_cert is None:
        return None
    with open(args.tls_cert, "rb") as c, open(args.tls_key, "rb") as k:
        return [(c.read(), k.read())]


def main(args: argparse.Namespace) -> int:
    import logging

    import pyarrow as pa

    import tidelog
    from ..flight import serve

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    def ready(server) -> None:
        topics = server.log.topics()
        print(f"tidelog serve: Arrow Flight on {server.location} (log {server.log.path}, {len(topics)} topics"
              f"{', token required' if args.token or args.token_file else ''}"
              f"{', read-only' if args.read_only else ''})", flush=True)

    try:
        clean = serve(args.path, args.flight, ready=ready, token=_token(args), tls_certificates=_tls(args),
                      read_only=args.read_only, insecure_bind=args.insecure_bind,
                      max_batch_bytes=args.max_batch_bytes, shutdown_grace_s=args.shutdown_grace)
    except (tidelog.TidelogError, ValueError, OSError, pa.ArrowException) as e:
        print(f"tidelog serve: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    if not clean:
        # Calls still in progress hold the server: the log is flushed, so leaving them loses nothing acknowledged.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    print("tidelog serve: stopped; the log is flushed and closed", flush=True)
    return 0
