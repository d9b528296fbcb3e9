"""Certificates and keys for the local control plane, made with `cryptography` (ECDSA P-256).

Two certificate authorities, as envtest and kubeadm keep them apart: a serving CA that signs the
kube-apiserver's TLS certificate, and a client CA (the apiserver's --client-ca-file) that signs
the admin user's certificate (CN=admin, O=system:masters). A separate key pair signs and
verifies ServiceAccount tokens. Every function returns PEM bytes and does no I/O; only the keys
are random, and `now` is a parameter so callers and tests control validity.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_VALIDITY = dt.timedelta(days=365)
# Backdating absorbs small clock differences between the processes that check the certificates.
BACKDATE = dt.timedelta(hours=1)
ADMIN_USER = "admin"
ADMIN_GROUPS = ("system:masters",)
# Names a client inside the cluster may use for the apiserver (a node joins in a later issue).
IN_CLUSTER_NAMES = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class KeyPair:
    """A PEM certificate and its PEM (PKCS#8, unencrypted) private key."""

    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class ClusterPki:
    """Everything the control plane needs to serve TLS and authenticate its admin."""

    serving_ca: KeyPair
    apiserver: KeyPair
    client_ca: KeyPair
    admin: KeyPair
    service_account_key_pem: bytes
    service_account_public_pem: bytes


def make_cluster_pki(now: dt.datetime, service_ip: str) -> ClusterPki:
    """Make both CAs, the apiserver serving cert, the admin client cert and the SA signing key.

    `service_ip` is the first address of the service range (the `kubernetes` Service's IP).
    """
    serving_ca = make_ca("modelops-dev-serving-ca", now)
    client_ca = make_ca("modelops-dev-client-ca", now)
    sa_private, sa_public = make_service_account_keys()
    return ClusterPki(
        serving_ca=serving_ca,
        apiserver=issue_serving_cert(
            serving_ca,
            "kube-apiserver",
            dns_names=("localhost", *IN_CLUSTER_NAMES),
            ip_addresses=("127.0.0.1", service_ip),
            now=now,
        ),
        client_ca=client_ca,
        admin=issue_client_cert(client_ca, ADMIN_USER, ADMIN_GROUPS, now),
        service_account_key_pem=sa_private,
        service_account_public_pem=sa_public,
    )


def make_ca(
    common_name: str, now: dt.datetime, validity: dt.timedelta = DEFAULT_VALIDITY
) -> KeyPair:
    """A self-signed CA that may sign leaf certificates only (path length 0)."""
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        _base_builder(name, name, key.public_key(), now, validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return KeyPair(_cert_pem(builder.sign(key, hashes.SHA256())), _key_pem(key))


def issue_serving_cert(
    ca: KeyPair,
    common_name: str,
    *,
    dns_names: tuple[str, ...],
    ip_addresses: tuple[str, ...],
    now: dt.datetime,
    validity: dt.timedelta = DEFAULT_VALIDITY,
) -> KeyPair:
    """A TLS server certificate for the given DNS names and IP addresses, signed by `ca`."""
    if not dns_names and not ip_addresses:
        raise ValueError("dns_names/ip_addresses: a serving certificate needs at least one name")
    sans = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return _issue(ca, subject, ExtendedKeyUsageOID.SERVER_AUTH, now, validity, sans)


def issue_client_cert(
    ca: KeyPair,
    user: str,
    groups: tuple[str, ...],
    now: dt.datetime,
    validity: dt.timedelta = DEFAULT_VALIDITY,
) -> KeyPair:
    """A client certificate Kubernetes reads as user CN=`user` in groups O=`groups`."""
    if not user:
        raise ValueError("user: a client certificate needs a non-empty user name")
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, user))
    return _issue(ca, x509.Name(attributes), ExtendedKeyUsageOID.CLIENT_AUTH, now, validity, [])


def make_service_account_keys() -> tuple[bytes, bytes]:
    """(private, public) PEM of a token-signing key.

    The apiserver's --service-account-key-file accepts only public keys or certificates, so
    the public half is a separate PEM ("PUBLIC KEY", PKIX).
    """
    key = _new_key()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _key_pem(key), public


def _issue(
    ca: KeyPair,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    now: dt.datetime,
    validity: dt.timedelta,
    sans: list[x509.GeneralName],
) -> KeyPair:
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    key = _new_key()
    builder = (
        _base_builder(subject, ca_cert.subject, key.public_key(), now, validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return KeyPair(_cert_pem(builder.sign(ca_key, hashes.SHA256())), _key_pem(key))


def _base_builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: dt.datetime,
    validity: dt.timedelta,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + validity)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)
