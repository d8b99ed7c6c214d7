"""The PKI of a local cluster: a CA, serving and client certificates, the SA key.

Everything is generated fresh for each cluster (nothing here is a secret worth keeping)
and written as PEM files into the cluster's directory, where the components read them.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Long enough for a demo left running over a weekend, short enough to be obviously test-only.
_VALIDITY = datetime.timedelta(days=30)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class KeyPair:
    """Paths of a PEM certificate and its private key."""

    cert: Path
    key: Path


class CertificateAuthority:
    """A self-signed CA that issues the cluster's certificates."""

    def __init__(self, common_name: str) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )

    def write(self, directory: Path, stem: str) -> KeyPair:
        """Write the CA certificate and key as ``<stem>.crt`` / ``<stem>.key``."""
        return _write_pair(directory, stem, self._cert, self._key)

    def issue(
        self,
        directory: Path,
        stem: str,
        *,
        common_name: str,
        organizations: tuple[str, ...] = (),
        server_names: tuple[str, ...] = (),
        server_ips: tuple[str, ...] = (),
        client: bool = False,
    ) -> KeyPair:
        """Issue a leaf certificate; a server one when names/IPs are given, a client one
        when ``client`` (Kubernetes maps CN to the user and O to groups)."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        subject += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
        usages = []
        if server_names or server_ips:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(subject))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in server_names]
        alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips]
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        return _write_pair(directory, stem, cert, key)


def write_service_account_keys(directory: Path) -> KeyPair:
    """The key the apiserver signs ServiceAccount tokens with (``sa.key``) and its public
    half (``sa.pub``, in the ``cert`` slot) that verifies them."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = directory / "sa.key"
    public = directory / "sa.pub"
    _write_private(private, key)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return KeyPair(cert=public, key=private)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write_pair(directory: Path, stem: str, cert: x509.Certificate, key: PrivateKey) -> KeyPair:
    pair = KeyPair(cert=directory / f"{stem}.crt", key=directory / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(pair.key, key)
    return pair


def _write_private(path: Path, key: PrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


# Client identities of the cluster's own components: kubeconfig stem -> (user, groups).
COMPONENT_CLIENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "admin": ("warmpool-envtest-admin", ("system:masters",)),
    "controller-manager": ("system:kube-controller-manager", ()),
    "scheduler": ("system:kube-scheduler", ()),
    # KWOK plays every kubelet at once, so it cannot be one system:node:<name>.
    "kwok": ("kwok-controller", ("system:masters",)),
}


def write_cluster_pki(pki: Path) -> tuple[CertificateAuthority, dict[str, KeyPair]]:
    """Write a cluster's PKI into ``pki``: the CA (``ca``), the apiserver's serving cert
    (``apiserver``) and kubelet-client cert, the front-proxy CA and client, the
    service-account keys (``sa.key``/``sa.pub``) and a client cert per
    COMPONENT_CLIENTS entry. Returns the CA (to issue more) and those client pairs."""
    ca = CertificateAuthority("warmpool-envtest-ca")
    ca.write(pki, "ca")
    ca.issue(
        pki,
        "apiserver",
        common_name="kube-apiserver",
        server_names=(
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ),
        server_ips=("127.0.0.1", "10.96.0.1"),
    )
    # The apiserver's identity towards kubelets (KWOK serves no kubelet API for logs or
    # exec here; the flag keeps the apiserver's configuration complete).
    ca.issue(
        pki,
        "apiserver-kubelet-client",
        common_name="kube-apiserver-kubelet-client",
        organizations=("system:masters",),
        client=True,
    )
    front_proxy = CertificateAuthority("warmpool-envtest-front-proxy-ca")
    front_proxy.write(pki, "front-proxy-ca")
    front_proxy.issue(pki, "front-proxy-client", common_name="front-proxy-client", client=True)
    write_service_account_keys(pki)
    clients = {
        stem: ca.issue(pki, stem, common_name=user, organizations=groups, client=True)
        for stem, (user, groups) in COMPONENT_CLIENTS.items()
    }
    return ca, clients
