"""TLS for the gRPC port: server and peer credentials, and test certificates (channels: channels.py).

A node with a ``[tls]`` section serves only TLS, and opens its channels to
peers with the same files: its certificate doubles as its client certificate,
so a cluster that requires client certificates (mutual TLS) still works.
``ordo-node certs`` writes a private CA and one certificate per node for tests
and local clusters; production deployments bring their own.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .channels import client_credentials
from .config import TlsSettings


def server_credentials(tls: TlsSettings) -> grpc.ServerCredentials:
    """What the node's gRPC port serves."""
    return grpc.ssl_server_credentials(
        [(tls.key_file.read_bytes(), tls.cert_file.read_bytes())],
        root_certificates=tls.ca_file.read_bytes(),
        require_client_auth=tls.require_client_cert,
    )


def https_context(tls: TlsSettings) -> ssl.SSLContext:
    """The metrics and dashboard port's TLS: the node's certificate, no client certificate asked."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert_file, tls.key_file)
    return context


def peer_credentials(tls: TlsSettings | None) -> grpc.ChannelCredentials | None:
    """A node's credentials towards its peers (and itself): the cluster's CA, its own certificate."""
    return client_credentials(tls.ca_file, tls.cert_file, tls.key_file) if tls else None


@dataclass(frozen=True)
class Issued:
    """Files written by :func:`make_certificates`."""

    ca_file: Path
    certs: dict[str, tuple[Path, Path]]  # name -> (certificate, key)


def make_certificates(
    folder: Path, names: Sequence[str], hosts: Sequence[str], *, clients: Sequence[str] = (), days: int = 365
) -> Issued:
    """A private CA, a node certificate per name in ``names``, a client certificate per name in ``clients``.

    Node certificates serve as server and client certificates and are valid for
    every host in ``hosts``; client certificates can only authenticate a client.
    Keys are P-256, written with mode 0600 to files that must not exist yet.
    """
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ordo_node test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(key_cert_sign=True), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(folder / "ca.key", ca_key)
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    alt_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    certs: dict[str, tuple[Path, Path]] = {}
    for name in [*names, *clients]:
        node = name in names
        key = ec.generate_private_key(ec.SECP256R1())
        purposes = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH] if node else []
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(purposes or [ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
            )
        )
        if node:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        cert_file, key_file = folder / f"{name}.pem", folder / f"{name}.key"
        _write_key(key_file, key)
        cert_file.write_bytes(builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
        certs[name] = (cert_file, key_file)
    return Issued(ca_file, certs)


def _usage(*, key_cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Write a key to a new file, readable by its owner only (never through a symlink)."""
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
