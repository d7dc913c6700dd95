"""A throwaway test CA and one leaf certificate per XMPP domain, made with the openssl CLI.

Leaves carry subjectAltName DNS:<domain> (and DNS:*.<domain>), EKU serverAuth + clientAuth
(s2s TLS is mutual: the initiating server presents its certificate as a client certificate),
and deliberately no id-on-xmppAddr otherName (reported to crash ejabberd 23.01). Keys are ECDSA
P-256 in PKCS#8 PEM, which rustls, LuaSec (Prosody) and fast_tls (ejabberd) all read.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Leaf:
    domain: str
    cert: Path  # leaf certificate followed by the CA certificate
    key: Path
    combined: Path  # cert chain + key in one file (ejabberd's certfiles)


def _openssl(*args: str, cwd: Path) -> None:
    res = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{res.stderr}")


class TestCa:
    __test__ = False

    def __init__(self, directory: Path, name: str = "Rookery s2s interop test CA"):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cert = self.dir / "ca.pem"
        self.key = self.dir / "ca.key"
        _openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(self.key), "-out", str(self.cert), "-days", "90", "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-addext", "subjectKeyIdentifier=hash",
            cwd=self.dir,
        )

    def issue(self, domain: str) -> Leaf:
        key = self.dir / f"{domain}.key"
        csr = self.dir / f"{domain}.csr"
        leaf = self.dir / f"{domain}.leaf.pem"
        ext = self.dir / f"{domain}.ext"
        ext.write_text(
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth,clientAuth\n"
            f"subjectAltName=DNS:{domain},DNS:*.{domain}\n"
            "subjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid\n"
        )
        _openssl(
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={domain}",
            cwd=self.dir,
        )
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key),
            "-CAcreateserial", "-days", "90", "-out", str(leaf), "-extfile", str(ext),
            cwd=self.dir,
        )
        chain = self.dir / f"{domain}.crt"
        chain.write_text(leaf.read_text() + self.cert.read_text())
        combined = self.dir / f"{domain}.pem"
        combined.write_text(chain.read_text() + key.read_text())
        for p in (key, combined):
            p.chmod(0o644)  # read by the peers, which may drop privileges
        return Leaf(domain=domain, cert=chain, key=key, combined=combined)
