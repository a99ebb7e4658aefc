"""What the node's and the client's commands share: the exit status of a bad invocation, the TLS flags."""

from __future__ import annotations

import argparse

from ..client import ENV_CA_FILE, ENV_CERT_FILE, ENV_KEY_FILE, ENV_TOKEN

EXIT_CONFIG = 2


def add_security_flags(c: argparse.ArgumentParser, *, token: bool = True) -> None:
    """--token and the TLS flags of every client command."""
    g = c.add_argument_group("secured clusters")
    if token:
        g.add_argument("--token", default=None, help=f"bearer token (${ENV_TOKEN})")
    g.add_argument("--ca-file", default=None, help=f"use TLS, trusting this CA's PEM file (${ENV_CA_FILE})")
    g.add_argument("--cert-file", default=None, help=f"client certificate for mutual TLS (${ENV_CERT_FILE})")
    g.add_argument("--key-file", default=None, help=f"its private key (${ENV_KEY_FILE})")
    g.add_argument("--server-name", default="", help="check the nodes' certificates against this name")


# Ctrl-C (SIGINT): 128 + 2, as shells report it.
EXIT_INTERRUPTED = 130
# submit --wait --wait-timeout: the job had not ended (as timeout(1) exits).
EXIT_WAIT_TIMEOUT = 124
