"""Revocation checking end to end: `smimegate cert status` against a CA run
with `openssl ca` (index.txt), its CRL served over HTTP by Python's
http.server and its OCSP responder run as `openssl ocsp -index`.

Exit codes of `cert status`: 0 good, 1 revoked, 2 unknown (or an error).
"""

import http.server
import json
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

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


def issue(d, name, ext):
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout",
            d / f"{name}.key", "-out", d / f"{name}.csr", "-subj",
            f"/CN={name}")
    openssl("ca", "-batch", "-config", d / "ca.cnf", "-extensions", ext,
            "-in", d / f"{name}.csr", "-out", d / f"{name}.pem", "-notext")


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    d = tmp_path_factory.mktemp("revca")
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


@pytest.fixture
def crl_server(ca):
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


@pytest.fixture
def ocsp_server(ca, tmp_path):
    d = ca["dir"]
    log = tmp_path / "ocsp.log"
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


def status(run, ca, cert, *extra):
    d = ca["dir"]
    return run(["cert", "status", d / f"{cert}.pem", "--trust",
                d / "ca.pem", "--timeout", "5"] + list(extra))


def out(proc):
    return proc.stdout.decode()


def test_good_by_ocsp(run, ca, crl_server, ocsp_server):
    p = status(run, ca, "good")
    assert p.returncode == 0, p.stderr
    assert out(p) == "good: OCSP: good\n"


def test_revoked_by_ocsp(run, ca, ocsp_server):
    # The CRL server is down: the answer comes from OCSP alone.
    p = status(run, ca, "revoked", "--json")
    assert p.returncode == 1, p.stderr
    j = json.loads(out(p))
    assert j["status"] == "revoked"
    assert j["reason"].startswith("revoked by OCSP on ")
    assert j["reason"].endswith("(keyCompromise)")
    assert j["subject"] == "CN=revoked"


def test_revoked_by_crl_distribution_point(run, ca, crl_server):
    p = status(run, ca, "revoked", "--no-ocsp")
    assert p.returncode == 1, p.stderr
    assert out(p).startswith(
        "revoked: revoked by CRL of CN=Revocation Test CA on ")
    assert "(keyCompromise)" in out(p)
    assert crl_server.hits == ["/ca.crl"]


def test_good_by_crl_distribution_point(run, ca, crl_server):
    p = status(run, ca, "good", "--no-ocsp")
    assert p.returncode == 0, p.stderr
    assert out(p) == "good: CRL of CN=Revocation Test CA: good\n"


def test_unknown_when_responders_are_down(run, ca):
    # OpenSSL retries a refused connection until the timeout.
    p = status(run, ca, "good", "--timeout", "1")
    assert p.returncode == 2, p.stderr
    assert out(p) == (f"unknown: OCSP http://127.0.0.1:{ca['ocsp_port']}/: "
                      "no response (connect timeout)\n")
    # The revoked one is not reported revoked without an answer either.
    p = status(run, ca, "revoked", "--json", "--timeout", "1")
    assert p.returncode == 2
    assert json.loads(out(p))["status"] == "unknown"


def test_crl_file_without_network(run, ca):
    d = ca["dir"]
    p = status(run, ca, "revoked", "--no-ocsp", "--no-fetch", "--crl",
               d / "ca-crl.pem")
    assert p.returncode == 1, p.stderr
    p = status(run, ca, "good", "--no-ocsp", "--no-fetch", "--crl",
               d / "www" / "ca.crl")
    assert p.returncode == 0, p.stderr
    assert out(p) == "good: CRL of CN=Revocation Test CA: good\n"


def test_crl_of_an_impostor_is_not_believed(run, ca):
    d = ca["dir"]
    evil = d / "evil-crl.pem"
    if not evil.exists():
        # A CRL of the same issuer name, signed with another key.
        cnf = d / "evil.cnf"
        cnf.write_text((d / "ca.cnf").read_text()
                       .replace("$dir/ca.pem", "$dir/evil.pem")
                       .replace("$dir/ca.key", "$dir/evil.key"))
        openssl("ca", "-gencrl", "-config", cnf, "-out", evil)
    p = status(run, ca, "good", "--no-ocsp", "--no-fetch", "--crl", evil)
    assert p.returncode == 2, p.stderr
    assert "signature does not verify" in out(p)


def test_usage_errors(run, ca):
    d = ca["dir"]
    p = run(["cert", "status", d / "good.pem"])
    assert p.returncode == 2
    assert b"--trust" in p.stderr
    p = run(["cert", "status", d / "good.pem", "--trust", d / "ca.pem",
             "--crl", d / "nonexistent.crl"])
    assert p.returncode == 2
    assert b"cannot read" in p.stderr
