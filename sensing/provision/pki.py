"""A store's small PKI: one CA, a server certificate for the broker, and one client
certificate per node, aggregator and BI client (EC P-256).

The broker requires a client certificate and takes its common name as the MQTT
user name (``use_identity_as_username``), so the ACL (:mod:`sensing.provision.broker_acl`)
decides what each may publish and read by these names: ``node-{id}``,
``aggregator-{store}``, ``bi-{name}``. Private keys are written mode 0600.

Needs the ``cryptography`` package (imported when used).

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> ca = make_ca(d / "ca")
>>> node = issue(ca, d, "node-n1")
>>> cert_info(node.cert).common_name
'node-n1'
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware_bridge.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate and its private key on disk (PEM)."""

    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class CertInfo:
    common_name: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    is_ca: bool


def _crypto() -> Any:
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ConfigError(
            "certificate tools need the 'cryptography' package (pip install cryptography)"
        ) from e
    return x509, hashes, serialization, ec, NameOID, ExtendedKeyUsageOID


def _write_key(path: Path, key: Any) -> None:
    _, _, serialization, _, _, _ = _crypto()
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(data)


def _write_cert(path: Path, cert: Any) -> None:
    _, _, serialization, _, _, _ = _crypto()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def check_server_names(names: Sequence[str], option: str) -> list[str]:
    """``names`` as a server certificate's DNS names and IP addresses, in order, each
    once: one per ``option`` given (``--broker-host``, ``--host``), none blank, none
    with a space or a ``/`` (a URL or a path is not a name).

    >>> check_server_names(["aggregator.local", "192.168.10.2", "aggregator.local"], "--host")
    ['aggregator.local', '192.168.10.2']
    >>> check_server_names(["mqtt://box"], "--host")
    Traceback (most recent call last):
    ...
    firmware_bridge.errors.ConfigError: --host 'mqtt://box': a DNS name or an IP address
    """
    out: list[str] = []
    for n in names:
        if not n.strip() or any(c.isspace() for c in n) or "/" in n:
            raise ConfigError(f"{option} {n!r}: a DNS name or an IP address")
        if n not in out:
            out.append(n)
    return out


def make_ca(prefix: Path, name: str = "footfall store CA", days: int = 3650) -> Issued:
    """A self-signed CA: ``{prefix}.crt`` and ``{prefix}.key``."""
    x509, hashes, _, ec, NameOID, _ = _crypto()
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    out = Issued(Path(f"{prefix}.crt"), Path(f"{prefix}.key"))
    _write_cert(out.cert, cert)
    _write_key(out.key, key)
    return out


def issue(
    ca: Issued,
    out_dir: Path,
    common_name: str,
    server_names: list[str] | None = None,
    days: int = 825,
    not_before: dt.datetime | None = None,
) -> Issued:
    """A certificate signed by ``ca``: a client certificate with CN ``common_name``,
    or a server certificate when ``server_names`` (DNS names / IP addresses) are given."""
    x509, hashes, serialization, ec, NameOID, EKU = _crypto()
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if server_names:
        alt: list[Any] = []
        for n in server_names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                alt.append(x509.DNSName(n))
        b = b.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        b = b.add_extension(x509.ExtendedKeyUsage([EKU.SERVER_AUTH]), critical=False)
    else:
        b = b.add_extension(x509.ExtendedKeyUsage([EKU.CLIENT_AUTH]), critical=False)
    cert = b.sign(ca_key, hashes.SHA256())
    out = Issued(out_dir / f"{common_name}.crt", out_dir / f"{common_name}.key")
    _write_cert(out.cert, cert)
    _write_key(out.key, key)
    return out


def cert_info(path: Path) -> CertInfo:
    """Subject, issuer and validity of a PEM certificate (ConfigError if unreadable)."""
    x509, _, _, _, NameOID, _ = _crypto()
    try:
        c = x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: not a readable PEM certificate: {e}") from e

    def cn(name: Any) -> str:
        attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(attrs[0].value) if attrs else name.rfc4514_string()

    try:
        is_ca = bool(c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        is_ca = False
    return CertInfo(
        cn(c.subject), cn(c.issuer), c.not_valid_before_utc, c.not_valid_after_utc, is_ca
    )


def provision_store(
    out_dir: Path,
    store: str,
    nodes: list[str],
    bi_clients: list[str],
    broker_names: list[str],
) -> dict[str, Issued]:
    """Everything a store needs: ``ca``, ``broker``, ``aggregator-{store}``,
    ``node-{id}`` for every node and ``bi-{name}`` for every BI client."""
    from sensing.provision.broker_acl import aggregator_user, bi_user, node_user

    out_dir.mkdir(parents=True, exist_ok=True)
    ca = make_ca(out_dir / "ca", f"footfall {store} CA")
    issued = {"ca": ca, "broker": issue(ca, out_dir, "broker", broker_names)}
    for user in [aggregator_user(store), *map(node_user, nodes), *map(bi_user, bi_clients)]:
        issued[user] = issue(ca, out_dir, user)
    return issued
