"""Revocation checking end to end: `smimegate cert status` against a CA run
with `openssl ca` (index.txt), its CRL served over HTTP by Python's
http.server and its OCSP responder run as `openssl ocsp -index`.

Exit codes of `cert status`: 0 good, 1 revoked, 2 unknown (or an error).
"""

import json
import subprocess

import pytest

import revocation_util
from smime_util import openssl

@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return revocation_util.make_ca(tmp_path_factory.mktemp("revca"))


@pytest.fixture
def crl_server(ca):
    with revocation_util.crl_server(ca) as srv:
        yield srv


@pytest.fixture
def ocsp_server(ca, tmp_path):
    with revocation_util.ocsp_server(ca, tmp_path) as proc:
        yield proc


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


# ---- smimegate verify with revocation checking ----

def signed_by(ca, name):
    d = ca["dir"]
    entity = b"Content-Type: text/plain\r\n\r\nSigned by " + name.encode() \
        + b".\r\n"
    return subprocess.run(
        ["openssl", "cms", "-sign", "-signer", d / f"{name}.pem", "-inkey",
         d / f"{name}.key", "-md", "sha256", "-from", f"{name}@example.com",
         "-to", "bob@example.org", "-subject", "revocation"],
        input=entity, capture_output=True, timeout=60, check=True).stdout


def verify(run, ca, name, *extra):
    d = ca["dir"]
    return run(["verify", "--trust", d / "ca.pem", *map(str, extra)],
               input=signed_by(ca, name))


def test_verify_without_options_does_not_check(run, ca):
    p = verify(run, ca, "revoked", "--json")
    assert p.returncode == 0, p.stderr
    j = json.loads(out(p))
    assert j["revocation"] is None and j["revocation_reason"] is None


def test_verify_with_a_crl_file(run, ca):
    d = ca["dir"]
    p = verify(run, ca, "revoked", "--crl", d / "ca-crl.pem")
    assert p.returncode == 1
    assert b"revoked: signer CN=revoked: revoked by CRL" in p.stderr, \
        p.stderr
    assert p.stdout == b""  # output only on success
    p = verify(run, ca, "good", "--crl", d / "ca-crl.pem", "--json")
    assert p.returncode == 0, p.stderr
    j = json.loads(out(p))
    assert j["status"] == "ok" and j["revocation"] == "good"
    assert "CRL of CN=Revocation Test CA: good" in j["revocation_reason"]


def test_verify_check_revocation_by_ocsp(run, ca, ocsp_server):
    p = verify(run, ca, "revoked", "--check-revocation", "--json")
    assert p.returncode == 1
    j = json.loads(out(p))
    assert j["status"] == "revoked" and j["revocation"] == "revoked"
    assert "OCSP" in j["revocation_reason"]
    p = verify(run, ca, "good", "--check-revocation")
    assert p.returncode == 0, p.stderr
    assert b"Signed by good." in p.stdout


def test_verify_unknown_soft_and_hard(run, ca):
    # nothing answers: soft-fail goes on and says so, hard-fail fails
    p = verify(run, ca, "good", "--check-revocation",
               "--revocation-timeout", "1", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(out(p))["revocation"] == "unknown"
    assert b"warning: revocation status unknown (soft-fail)" in p.stderr
    p = verify(run, ca, "good", "--check-revocation",
               "--revocation-timeout", "1", "--revocation-hard-fail")
    assert p.returncode == 1
    assert b"revocation-unknown" in p.stderr
    assert b"revocation status unknown (hard-fail)" in p.stderr, p.stderr


def test_verify_revocation_usage_errors(run, ca):
    d = ca["dir"]
    p = verify(run, ca, "good", "--revocation-hard-fail")
    assert p.returncode == 2 and b"go with --crl" in p.stderr
    p = verify(run, ca, "good", "--check-revocation",
               "--revocation-timeout", "0")
    assert p.returncode == 2 and b"1 to 60" in p.stderr
    p = verify(run, ca, "good", "--crl", d / "nonexistent.crl")
    assert p.returncode == 2 and b"cannot read" in p.stderr
