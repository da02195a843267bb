"""How the gateway checks a next hop's certificate, end to end: the real
`smimegate serve` relays to aiosmtpd sinks with STARTTLS on 127.0.0.1.

- tls_ca_file: a partner's private CA (made here with `openssl req` and
  `openssl x509 -req`) replaces the system's bundle for one route; a
  certificate from another CA is not verified and the mail waits.
- tls_fingerprint: the SHA-256 of the next hop's certificate or of its
  public key, as `openssl x509 -fingerprint` and `openssl pkey` print
  them; a self-signed next hop that matches is verified, one that does not
  match waits with its fingerprint in the log, and a pin makes TLS
  required.
- smarthost_tls_fingerprint and smarthost_tls_ca_file, the same for the
  smarthost; check-config reports a bad setting with its line.
"""
import hashlib
import subprocess

import pytest

from gateway_util import T, wait_log
from test_relay import (relay_gw, relay_lines, send, sinks,  # noqa: F401
                        spooled, verify)


def openssl(*args, **kw):
    return subprocess.run(["openssl", *map(str, args)], capture_output=True,
                          timeout=T, check=True, **kw).stdout


def private_ca(d, name="ca"):
    """A CA certificate and key: the partner's own, in no system bundle."""
    cert, key = d / f"{name}.pem", d / f"{name}.key"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out",
            cert, "-days", "2", "-subj", f"/CN=Partner {name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return cert, key


def server_cert(d, ca):
    """A server certificate for 127.0.0.1, issued by CA."""
    cert, key, csr = d / "server.pem", d / "server.key", d / "server.csr"
    ext = d / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n"
                   "extendedKeyUsage=serverAuth\n")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr,
            "-subj", "/CN=127.0.0.1")
    openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1],
            "-CAcreateserial", "-days", "1", "-extfile", ext, "-out", cert)
    return cert, key


def cert_sha256(pem):
    """`openssl x509 -fingerprint -sha256`: AB:CD:... """
    out = openssl("x509", "-in", pem, "-noout", "-fingerprint", "-sha256")
    return out.decode().strip().split("=", 1)[1]


def spki_sha256(pem):
    """The SHA-256 of the certificate's SubjectPublicKeyInfo, hex."""
    pub = openssl("x509", "-in", pem, "-noout", "-pubkey")
    der = openssl("pkey", "-pubin", "-outform", "DER", input=pub)
    return hashlib.sha256(der).hexdigest()


def route(sink, **keys):
    lines = "".join(f"{k} = {v}\n" for k, v in keys.items())
    return (f"\n[route partner]\ndomains = example.net\n"
            f"nexthop = {sink.address}\n{lines}")


def delivered_verified(gw, sink, text):
    (m,) = sink.messages(log=gw.log)
    assert m["tls"] is True
    verify(gw, m["data"], text)
    wait_log(gw, "event=delivered")
    assert gw.stop() == 0
    (line,) = relay_lines(gw)
    assert "tls=yes verified=yes" in line, line
    assert not spooled(gw)


def deferred(gw, sink, why):
    text = wait_log(gw, "event=deferred")
    assert why in text, text
    assert "event=delivered" not in text
    assert gw.stop() == 0
    assert not sink.handler.messages
    assert len(spooled(gw)) == 1  # kept for later, not bounced
    return text


def test_route_ca_file_verifies_a_partners_private_ca(relay_gw, sinks,
                                                      tmp_path):
    ca = private_ca(tmp_path)
    sink = sinks(tls=True, cert=server_cert(tmp_path, ca))
    gw = relay_gw(route(sink, tls="required", tls_ca_file=ca[0]))
    send(gw, "To the partner's own CA.")
    delivered_verified(gw, sink, "To the partner's own CA.")


def test_route_ca_file_refuses_a_certificate_of_another_ca(relay_gw, sinks,
                                                           tmp_path):
    ca = private_ca(tmp_path)
    other, _ = private_ca(tmp_path, "other")
    sink = sinks(tls=True, cert=server_cert(tmp_path, ca))
    gw = relay_gw(route(sink, tls="required", tls_ca_file=other))
    send(gw, "Not to a stranger's certificate.")
    deferred(gw, sink, "not verified: unable to get local issuer certificate")


@pytest.mark.parametrize("kind", ["certificate", "public key"])
def test_pinned_self_signed_next_hop_is_verified(relay_gw, sinks, kind):
    sink = sinks(tls=True)  # self-signed: no CA would verify it
    pin = (cert_sha256(sink.cert) if kind == "certificate"
           else "sha256:" + spki_sha256(sink.cert))
    gw = relay_gw(route(sink, tls_fingerprint=f"{'00' * 32}, {pin}"))
    send(gw, "To a pinned certificate.")
    delivered_verified(gw, sink, "To a pinned certificate.")


def test_pin_that_does_not_match_defers_and_names_the_certificate(
        relay_gw, sinks, tmp_path):
    sink = sinks(tls=True)
    other, _ = private_ca(tmp_path, "other")
    gw = relay_gw(route(sink, tls_fingerprint=cert_sha256(other)))
    send(gw, "Not to another certificate.")
    actual = cert_sha256(sink.cert).replace(":", "")
    deferred(gw, sink, f"matches no tls_fingerprint (its SHA-256: {actual})")


def test_pin_makes_tls_required(relay_gw, sinks, tmp_path):
    sink = sinks(tls=False)
    other, _ = private_ca(tmp_path, "other")
    gw = relay_gw(route(sink, tls_fingerprint=cert_sha256(other)))
    send(gw, "Never in clear to a pinned next hop.")
    deferred(gw, sink, "does not offer STARTTLS (TLS is required)")


def test_smarthost_pin_and_ca_file(relay_gw, sinks, tmp_path):
    ca = private_ca(tmp_path)
    sink = sinks(tls=True, cert=server_cert(tmp_path, ca))
    gw = relay_gw(f"smarthost = {sink.address}\n"
                  f"smarthost_tls_ca_file = {ca[0]}\n"
                  f"smarthost_tls_fingerprint = {cert_sha256(sink.cert)}\n")
    send(gw, "Through the pinned smarthost.")
    delivered_verified(gw, sink, "Through the pinned smarthost.")


def test_check_config_names_a_missing_ca_file(gateway, tmp_path):
    gw = gateway(extra="\n[route partner]\ndomains = example.net\n"
                       "nexthop = 127.0.0.1:25\n"
                       f"tls_ca_file = {tmp_path / 'missing.pem'}\n")
    r = gw.cli("check-config", "-c", gw.conf, check=False)
    assert r.returncode != 0
    err = r.stderr.decode()
    assert f'{gw.conf}:9: CA file "{tmp_path / "missing.pem"}": No such ' \
        "file or directory" in err, err
