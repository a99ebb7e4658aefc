"""Channels to a node, as any client opens them: TLS from files or plaintext, and loopback addresses.

Depends on grpc and the standard library only, so the Python client stands
alone; the node opens its channels to peers with the same functions (``tls.py``,
``peers.py``) and asks :func:`is_loopback` where a token would cross the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc


def is_loopback(address: str) -> bool:
    """True for a ``host:port`` only this machine can reach."""
    host = address.rpartition(":")[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def client_credentials(
    ca_file: str | Path | None, cert_file: str | Path | None = None, key_file: str | Path | None = None
) -> grpc.ChannelCredentials | None:
    """TLS trusting ``ca_file``, presenting ``cert_file`` if given; None (plaintext) without a CA.

    Raises OSError when a file cannot be read.
    """
    if not ca_file:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=Path(ca_file).read_bytes(),
        private_key=Path(key_file).read_bytes() if key_file else None,
        certificate_chain=Path(cert_file).read_bytes() if cert_file else None,
    )


def open_channel(
    address: str,
    credentials: grpc.ChannelCredentials | None,
    *,
    server_name: str = "",
    options: Sequence[tuple[str, Any]] = (),
    interceptors: Sequence[grpc.aio.ClientInterceptor] | None = None,
) -> grpc.aio.Channel:
    """A channel to ``address``: TLS with ``credentials`` (checking the certificate against
    ``server_name`` if given), plaintext when they are None."""
    opts = [*options, *([("grpc.ssl_target_name_override", server_name)] if server_name else [])]
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=opts, interceptors=interceptors)
    return grpc.aio.secure_channel(address, credentials, options=opts, interceptors=interceptors)
