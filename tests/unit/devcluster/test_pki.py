"""pki: certificate fields, SANs, key types and chains, checked the way TLS peers check them."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from modelops.devcluster import pki

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def cluster_pki() -> pki.ClusterPki:
    return pki.make_cluster_pki(NOW, "10.0.0.1")


def cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def test_cas_are_p256_leaf_only_authorities(cluster_pki: pki.ClusterPki) -> None:
    for ca in (cluster_pki.serving_ca, cluster_pki.client_ca):
        ca_cert = cert(ca.cert_pem)
        constraints = ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        assert (constraints.ca, constraints.path_length) == (True, 0)
        assert ca_cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
        assert ca_cert.issuer == ca_cert.subject
        assert isinstance(ca_cert.public_key(), ec.EllipticCurvePublicKey)
        assert ca_cert.public_key().curve.name == "secp256r1"
    serving, client = cert(cluster_pki.serving_ca.cert_pem), cert(cluster_pki.client_ca.cert_pem)
    assert serving.subject != client.subject


def test_apiserver_cert_names_loopback_and_in_cluster_addresses(
    cluster_pki: pki.ClusterPki,
) -> None:
    sans = (
        cert(cluster_pki.apiserver.cert_pem)
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    )
    assert {"localhost", "kubernetes.default.svc"} <= set(sans.get_values_for_type(x509.DNSName))
    assert set(sans.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("10.0.0.1"),
    }


@pytest.mark.parametrize("name", ["localhost", "kubernetes.default.svc"])
def test_apiserver_cert_verifies_as_a_tls_server_under_the_serving_ca(
    cluster_pki: pki.ClusterPki, name: str
) -> None:
    verifier = (
        PolicyBuilder()
        .store(Store([cert(cluster_pki.serving_ca.cert_pem)]))
        .time(NOW)
        .build_server_verifier(x509.DNSName(name))
    )
    chain = verifier.verify(cert(cluster_pki.apiserver.cert_pem), [])
    assert chain[-1] == cert(cluster_pki.serving_ca.cert_pem)


def test_apiserver_cert_is_refused_for_another_name_or_by_the_client_ca(
    cluster_pki: pki.ClusterPki,
) -> None:
    leaf = cert(cluster_pki.apiserver.cert_pem)
    wrong_name = PolicyBuilder().store(Store([cert(cluster_pki.serving_ca.cert_pem)])).time(NOW)
    with pytest.raises(VerificationError):
        wrong_name.build_server_verifier(x509.DNSName("example.com")).verify(leaf, [])
    wrong_ca = PolicyBuilder().store(Store([cert(cluster_pki.client_ca.cert_pem)])).time(NOW)
    with pytest.raises(VerificationError):
        wrong_ca.build_server_verifier(x509.DNSName("localhost")).verify(leaf, [])


def test_admin_cert_is_a_system_masters_client_of_the_client_ca(
    cluster_pki: pki.ClusterPki,
) -> None:
    admin = cert(cluster_pki.admin.cert_pem)
    assert admin.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "admin"
    groups = [a.value for a in admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert groups == ["system:masters"]
    usages = admin.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    # Kubernetes checks only the chain (no SAN on client certs, unlike the web-PKI verifier).
    admin.verify_directly_issued_by(cert(cluster_pki.client_ca.cert_pem))
    with pytest.raises((ValueError, InvalidSignature)):
        admin.verify_directly_issued_by(cert(cluster_pki.serving_ca.cert_pem))


def test_each_private_key_matches_its_certificate(cluster_pki: pki.ClusterPki) -> None:
    pki_ = cluster_pki
    for pair in (pki_.serving_ca, pki_.apiserver, pki_.client_ca, pki_.admin):
        key = serialization.load_pem_private_key(pair.key_pem, password=None)
        assert key.public_key() == cert(pair.cert_pem).public_key()


def test_service_account_public_key_belongs_to_the_signing_key(cluster_pki: pki.ClusterPki) -> None:
    private = serialization.load_pem_private_key(cluster_pki.service_account_key_pem, password=None)
    public = serialization.load_pem_public_key(cluster_pki.service_account_public_pem)
    assert private.public_key() == public
    assert cluster_pki.service_account_public_pem.startswith(b"-----BEGIN PUBLIC KEY-----")


def test_validity_window_follows_now(cluster_pki: pki.ClusterPki) -> None:
    leaf = cert(cluster_pki.apiserver.cert_pem)
    assert leaf.not_valid_before_utc == NOW - pki.BACKDATE
    assert leaf.not_valid_after_utc == NOW + pki.DEFAULT_VALIDITY


def test_bad_requests_name_the_field() -> None:
    ca = pki.make_ca("test-ca", NOW)
    with pytest.raises(ValueError, match="user"):
        pki.issue_client_cert(ca, "", ("g",), NOW)
    with pytest.raises(ValueError, match="dns_names/ip_addresses"):
        pki.issue_serving_cert(ca, "x", dns_names=(), ip_addresses=(), now=NOW)
    with pytest.raises(ValueError):
        pki.issue_serving_cert(ca, "x", dns_names=(), ip_addresses=("not-an-ip",), now=NOW)
