"""A test CA for revocation: `openssl ca` with its index.txt, a CRL served
over HTTP by Python's http.server at the certificates' distribution point,
and `openssl ocsp -index` as the responder named in their AIA.  Shared by
the CLI tests (test_revocation.py) and the gateway's
(test_revocation_gateway.py)."""

import http.server
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from smime_util import openssl

CA_CNF = """
[ca]
default_ca = testca

[testca]
dir = {d}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
crlnumber = $dir/crlnumber
certificate = $dir/ca.pem
private_key = $dir/ca.key
default_md = sha256
default_days = 30
default_crl_days = 7
policy = anything
unique_subject = no
copy_extensions = none

[anything]
commonName = supplied

[req]
distinguished_name = dn
prompt = no
[dn]
CN = Revocation Test CA

[v3_ca]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash

[ee]
basicConstraints = CA:false
keyUsage = critical,digitalSignature,nonRepudiation,keyEncipherment
extendedKeyUsage = emailProtection
crlDistributionPoints = URI:http://127.0.0.1:{crl_port}/ca.crl
authorityInfoAccess = OCSP;URI:http://127.0.0.1:{ocsp_port}/

[ocsp]
basicConstraints = CA:false
keyUsage = critical,digitalSignature
extendedKeyUsage = OCSPSigning
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def issue(d, name, ext, email=None):
    """Certificate NAME (NAME.pem, NAME.key) with extensions EXT of
    ca.cnf and, with EMAIL, that rfc822Name as its subjectAltName."""
    d = Path(d)
    subj = f"/CN={name}" + (f"/emailAddress={email}" if email else "")
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout",
            d / f"{name}.key", "-out", d / f"{name}.csr", "-subj", subj)
    extra = []
    if email:
        cnf = (d / "ca.cnf").read_text()
        sect = cnf.split(f"[{ext}]", 1)[1].split("\n[", 1)[0]
        (d / f"{name}.ext").write_text(
            f"[{ext}]{sect}\nsubjectAltName = email:{email}\n")
        extra = ["-extfile", d / f"{name}.ext"]
    openssl("ca", "-batch", "-config", d / "ca.cnf", "-extensions", ext,
            *extra, "-in", d / f"{name}.csr", "-out", d / f"{name}.pem",
            "-notext")


def revoke(ca, name, reason="keyCompromise"):
    """Revokes NAME and publishes a new CRL (ca-crl.pem and www/ca.crl);
    the OCSP responder reads index.txt when it starts."""
    d = ca["dir"]
    openssl("ca", "-config", d / "ca.cnf", "-revoke", d / f"{name}.pem",
            "-crl_reason", reason)
    publish_crl(ca)


def publish_crl(ca):
    d = ca["dir"]
    openssl("ca", "-gencrl", "-config", d / "ca.cnf", "-out",
            d / "ca-crl.pem")
    (d / "www").mkdir(exist_ok=True)
    openssl("crl", "-in", d / "ca-crl.pem", "-outform", "DER", "-out",
            d / "www" / "ca.crl")


def make_ca(d):
    """The CA in directory D with certificates good, revoked (by CRL and
    OCSP, keyCompromise) and ocsp (the responder's); evil.pem is another
    CA of the same name."""
    d = Path(d)
    ports = {"crl_port": free_port(), "ocsp_port": free_port()}
    (d / "newcerts").mkdir()
    (d / "index.txt").write_text("")
    (d / "serial").write_text("1000\n")
    (d / "crlnumber").write_text("1000\n")
    (d / "ca.cnf").write_text(CA_CNF.format(d=d, **ports))
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
            d / "ca.key", "-out", d / "ca.pem", "-days", "30", "-config",
            d / "ca.cnf", "-extensions", "v3_ca")
    issue(d, "good", "ee")
    issue(d, "revoked", "ee")
    issue(d, "ocsp", "ocsp")
    openssl("ca", "-config", d / "ca.cnf", "-revoke", d / "revoked.pem",
            "-crl_reason", "keyCompromise")
    openssl("ca", "-gencrl", "-config", d / "ca.cnf", "-out",
            d / "ca-crl.pem")
    # Served as DER, as distribution points usually are.
    (d / "www").mkdir()
    openssl("crl", "-in", d / "ca-crl.pem", "-outform", "DER", "-out",
            d / "www" / "ca.crl")
    # Another CA of the same name: its CRL must not be believed.
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
            d / "evil.key", "-out", d / "evil.pem", "-days", "30",
            "-subj", "/CN=Revocation Test CA")
    return {"dir": d, **ports}


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        self.server.hits.append(self.path)


@contextmanager
def crl_server(ca):
    """Serves DIR/www (ca.crl) at the distribution point's port."""
    d = ca["dir"]

    def handler(*a, **kw):
        return _Quiet(*a, directory=str(d / "www"), **kw)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", ca["crl_port"]),
                                          handler)
    srv.hits = []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    t.join(5)


@contextmanager
def ocsp_server(ca, logdir):
    """`openssl ocsp -index` on the AIA's port, until the block ends."""
    d = ca["dir"]
    log = Path(logdir) / "ocsp.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen(
            ["openssl", "ocsp", "-index", str(d / "index.txt"), "-port",
             str(ca["ocsp_port"]), "-rsigner", str(d / "ocsp.pem"),
             "-rkey", str(d / "ocsp.key"), "-CA", str(d / "ca.pem")],
            stdout=f, stderr=subprocess.STDOUT)
    try:
        # No probe connection: the responder serves one client at a
        # time and a probe would hold it up.  It says when it listens.
        end = time.time() + 10
        while b"waiting for OCSP client" not in log.read_bytes():
            assert proc.poll() is None and time.time() < end, (
                log.read_text())
            time.sleep(0.05)
        yield proc
    finally:
        proc.kill()
        proc.wait(5)
