"""``python -m tjf_http`` (``tjf-api``): run the REST API server, or check its configuration.

Settings come from ``--config FILE`` (TOML), ``TJF_*`` variables and flags, later ones winning
(:mod:`tjf_http.config`); ``--check-config`` loads and checks them (TLS files included), prints
the effective configuration as JSON with secrets masked, and exits: 0 when valid, 2 when not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from tjf_core.errors import ConfigurationError
from tjf_http.config import Config, load_config, masked, parse_assignment

__all__ = ["main"]

log = logging.getLogger("tjf_http")

#: Flags for the common settings: flag destination -> (section, key).
_FLAGS = {
    "runtime": ("", "runtime"),
    "host": ("tls", "host"),
    "port": ("tls", "port"),
    "cert": ("tls", "cert_file"),
    "key": ("tls", "key_file"),
    "client_ca": ("tls", "client_ca_file"),
    "trusted_socket": ("trusted", "unix_socket"),
    "ops_host": ("ops", "host"),
    "ops_port": ("ops", "port"),
    "threads": ("server", "threads"),
    "log_level": ("server", "log_level"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tjf-api", description="The Toolforge Jobs Framework REST API server.")
    parser.add_argument("--config", type=Path, help="a TOML configuration file")
    parser.add_argument("--check-config", action="store_true",
                        help="check the configuration, print it (secrets masked) and exit")
    parser.add_argument("--runtime", choices=("local", "kubernetes", "memory"),
                        help="where jobs run (default: local, unless a cluster is configured)")
    parser.add_argument("--host", help="address of the TLS listener (tls.host)")
    parser.add_argument("--port", help="port of the TLS listener (tls.port)")
    parser.add_argument("--cert", help="server certificate chain, PEM (tls.cert_file)")
    parser.add_argument("--key", help="server private key, PEM (tls.key_file)")
    parser.add_argument("--client-ca", help="CA of the client certificates (tls.client_ca_file)")
    parser.add_argument("--no-tls", action="store_true", help="no TLS listener (tls.enabled)")
    parser.add_argument("--trusted-socket", help="unix socket for a TLS-terminating proxy "
                                                 "(trusted.unix_socket)")
    parser.add_argument("--ops-host", help="address of the health/metrics listener (ops.host)")
    parser.add_argument("--ops-port", help="port of the health/metrics listener (ops.port)")
    parser.add_argument("--threads", help="threads for core calls (server.threads)")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="any setting, e.g. --set server.call_timeout_seconds=10")
    return parser


def _load(args: argparse.Namespace) -> Config:
    overrides: dict[tuple[str, str], str] = {}
    for dest, place in _FLAGS.items():
        value = getattr(args, dest)
        if value is not None:
            overrides[place] = str(value)
    if args.no_tls:
        overrides["tls", "enabled"] = "false"
    for text in args.set:
        section, key, value = parse_assignment(text)
        overrides[section if section != "top" else "", key] = value
    return load_config(file=args.config, environ=os.environ, overrides=overrides)


def _check(config: Config) -> None:
    from tjf_http.server import tls_context

    if config.http.tls.enabled:
        tls_context(config.http.tls)  # the files load, the key matches the certificate
    if config.runtime == "local":
        config.local.check_safe(uid=os.geteuid())  # a root server must say as whom jobs run
    print(json.dumps(masked(config.as_dict()), indent=2, sort_keys=True))


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    access = logging.StreamHandler(sys.stdout)
    access.setFormatter(logging.Formatter("%(message)s"))  # one JSON object per line
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level.upper())
    access_log = logging.getLogger("tjf_http.access")
    access_log.addHandler(access)
    access_log.setLevel(logging.INFO)  # server.access_log turns it off, not the log level
    access_log.propagate = False


def _serve(config: Config) -> None:
    from tjf_http.app import make_app
    from tjf_http.runtimes import make_service
    from tjf_http.server import serve

    local = None
    if config.runtime == "local":
        from tjf_http.local import local_mode_for

        local = local_mode_for(config)
        service, close = local.service, local.close
    else:
        service, close = make_service(config)
    try:
        app = make_app(service, config.http)
        if local is not None:
            local.install(app)
        asyncio.run(serve(app, config.http, ready=lambda server: log.info(
            "ready: %s", {kind.value: [str(a) for a in addresses]
                          for kind, addresses in server.addresses.items() if addresses})))
    finally:
        close()


def _busy_threads(wait: float = 1.0) -> bool:
    """Whether threads other than the main one are still at work after ``wait`` seconds."""
    deadline = time.monotonic() + wait
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join(max(deadline - time.monotonic(), 0))  # idle pool workers leave at once
    return any(thread.is_alive() and not thread.daemon for thread in threading.enumerate()
               if thread is not threading.main_thread())


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = _load(args)
        if args.check_config:
            _check(config)
            return 0
        _configure_logging(config.http.server.log_level)
        _serve(config)
    except ConfigurationError as error:
        print(f"tjf-api: configuration error: {error}", file=sys.stderr)
        return 2
    if _busy_threads():
        # A core call that never returns (a cluster that stopped answering) must not keep a
        # stopped server alive: the grace period is over.
        log.warning("threads still busy after the grace period: exiting anyway")
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
