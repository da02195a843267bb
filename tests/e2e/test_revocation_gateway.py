"""Revocation through the running daemon (issue 6): a test CA (`openssl
ca`) revokes a signer and a recipient.  A revoked signer's mail arrives
with smime=fail (revoked); nothing is encrypted to a revoked recipient's
certificate (the profile's missing_key applies); `openssl ocsp` answers
in another test; an unknown status goes on under soft-fail and defers the
message under hard-fail until the responder answers."""
import smtplib
import subprocess
import time

import pytest

import revocation_util
from gateway_util import T, crlf, swaks, wait_log
from smime_util import mime_entity

PARTNER = "partner.example"


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    ca = revocation_util.make_ca(tmp_path_factory.mktemp("gwrevca"))
    d = ca["dir"]
    # certificates that name no OCSP responder and no distribution point
    with open(d / "ca.cnf", "a") as f:
        f.write("\n[bare]\nbasicConstraints = CA:false\n"
                "keyUsage = critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage = emailProtection\n")
    for name in ("sgood", "srevoked", "rgood", "rrevoked"):
        revocation_util.issue(d, name, "ee", email=f"{name}@{PARTNER}")
    for name in ("sbare", "rbare"):
        revocation_util.issue(d, name, "bare", email=f"{name}@{PARTNER}")
    for name in ("srevoked", "rrevoked"):
        revocation_util.revoke(ca, name)
    return ca


def checking_gateway(gateway, ca, extra="", profile="mode = sign\n",
                     flow=""):
    """A gateway that trusts the test CA and checks revocation as EXTRA
    says (by default: the CA's CRL file only, no network)."""
    d = ca["dir"]
    gw = gateway(profile=profile,
                 extra="retry_min = 1s\nretry_max = 1s\n" + (
                     extra or f"crl_files = {d / 'ca-crl.pem'}\n"
                              "revocation_ocsp = off\n"
                              "revocation_fetch_crl = off\n"))
    if flow:
        gw.conf.write_text(gw.conf.read_text() + (
            "\n[flow partners]\nlisteners = in\naction = accept\n" + flow))
    gw.cli("ca", "import", d / "ca.pem")
    return gw


def send_signed(gw, ca, signer, body=b"Signed by a partner."):
    d = ca["dir"]
    frm = f"{signer}@{PARTNER}"
    entity = mime_entity(b"Content-Type: text/plain\r\n\r\n" + body
                         + b"\r\n")
    out = subprocess.run(
        ["openssl", "cms", "-sign", "-signer", d / f"{signer}.pem",
         "-inkey", d / f"{signer}.key", "-md", "sha256", "-from", frm,
         "-to", "bob@example.org", "-subject", "revocation test"],
        input=entity, capture_output=True, timeout=T, check=True).stdout
    with smtplib.SMTP("127.0.0.1", gw.in_port, timeout=T) as s:
        s.sendmail(frm, ["bob@example.org"], crlf(out))


def head(msg):
    return msg.split(b"\r\n\r\n", 1)[0].replace(b"\r\n\t", b" ")


def test_revoked_signer_fails_good_signer_passes(gateway, ca):
    gw = checking_gateway(gateway, ca).start()
    send_signed(gw, ca, "srevoked", b"From a revoked signer.")
    [msg] = gw.delivered(1)
    assert b"smime=fail (revoked)" in head(msg), head(msg)
    assert b"From a revoked signer." in msg  # delivered, not lost
    log = gw.log.read_text()
    assert "revoked by CRL" in log and "keyCompromise" in log, log
    send_signed(gw, ca, "sgood", b"From a good signer.")
    msgs = gw.delivered(2)
    good = [m for m in msgs if b"From a good signer." in m][0]
    assert b"smime=pass" in head(good), head(good)
    assert "revocation=good" in gw.log.read_text()


def test_revoked_signer_is_never_harvested(gateway, ca):
    gw = checking_gateway(gateway, ca,
                          flow="harvest = on\nharvest_on_failure = on\n")
    gw.start()
    send_signed(gw, ca, "srevoked")
    gw.delivered(1)
    wait_log(gw, "event=harvest result=skipped")
    assert "the signer's certificate is revoked" in gw.log.read_text()


def test_nothing_is_encrypted_to_a_revoked_recipient(gateway, ca):
    d = ca["dir"]
    gw = checking_gateway(gateway, ca,
                          profile="mode = sign-encrypt\nmissing_key = "
                                  "split\n")
    gw.cli("key", "add", "rgood", d / "rgood.pem")
    gw.cli("key", "add", "rrevoked", d / "rrevoked.pem")
    gw.start()
    r = swaks(gw.out_port, "--to", f"rgood@{PARTNER},rrevoked@{PARTNER}",
              "--body", "Quarterly figures.")
    assert r.returncode == 0, r.stdout.decode()
    msgs = gw.delivered(2)
    enc = [m for m in msgs if b"pkcs7-mime" in head(m)]
    plain = [m for m in msgs if b"multipart/signed" in head(m)]
    assert len(enc) == 1 and len(plain) == 1, [head(m) for m in msgs]
    assert f"Delivered-To: rgood@{PARTNER}".encode() in head(enc[0])
    assert f"Delivered-To: rrevoked@{PARTNER}".encode() in head(plain[0])
    # the good recipient's key opens the encrypted copy ...
    ok = subprocess.run(["openssl", "cms", "-decrypt", "-recip",
                         d / "rgood.pem", "-inkey", d / "rgood.key"],
                        input=enc[0], capture_output=True, timeout=T)
    assert ok.returncode == 0 and b"Quarterly figures." in ok.stdout
    # ... and the revoked one's does not: it was never a recipient.
    no = subprocess.run(["openssl", "cms", "-decrypt", "-recip",
                         d / "rrevoked.pem", "-inkey", d / "rrevoked.key"],
                        input=enc[0], capture_output=True, timeout=T)
    assert no.returncode != 0
    log = gw.log.read_text()
    assert f"rcpt=<rrevoked@{PARTNER}> event=certificate-revoked" in log
    assert f"rcpt=<rrevoked@{PARTNER}> decision=plain" in log


def test_revoked_recipient_with_missing_key_bounce_is_not_sent(gateway, ca):
    d = ca["dir"]
    gw = checking_gateway(gateway, ca,
                          profile="mode = encrypt\nmissing_key = bounce\n")
    gw.cli("key", "add", "rrevoked", d / "rrevoked.pem")
    gw.start()
    r = swaks(gw.out_port, "--to", f"rrevoked@{PARTNER}", "--body",
              "Must not leave.")
    assert r.returncode == 0, r.stdout.decode()
    wait_log(gw, "event=bounced")
    for m in gw.delivered(1):  # the DSN to the sender, nothing else
        assert b"Delivered-To: sender@example.com" in m, head(m)
        assert b"Must not leave." not in m or b"delivery-status" in m


def test_ocsp_says_revoked(gateway, ca, tmp_path):
    gw = checking_gateway(gateway, ca, extra="revocation_fetch_crl = off\n"
                                             "revocation_timeout = 5s\n")
    with revocation_util.ocsp_server(ca, tmp_path):
        gw.start()
        send_signed(gw, ca, "srevoked", b"Revoked, says OCSP.")
        [msg] = gw.delivered(1)
        send_signed(gw, ca, "sgood", b"Good, says OCSP.")
        msgs = gw.delivered(2)
    assert b"smime=fail (revoked)" in head(msg), head(msg)
    good = [m for m in msgs if b"Good, says OCSP." in m][0]
    assert b"smime=pass" in head(good)
    log = gw.log.read_text()
    assert "OCSP" in log and "revocation=revoked" in log


def test_unknown_status_soft_fail_goes_on(gateway, ca):
    # nothing answers: the responder and the distribution point are down
    gw = checking_gateway(gateway, ca, extra="revocation_timeout = 1s\n")
    gw.start()
    send_signed(gw, ca, "sgood", b"Soft.")
    [msg] = gw.delivered(1)
    assert b"smime=pass" in head(msg)
    assert "revocation=unknown" in gw.log.read_text()


def test_unknown_status_hard_fail_defers_until_the_responder_answers(
        gateway, ca, tmp_path):
    gw = checking_gateway(gateway, ca,
                          extra="revocation_timeout = 1s\n"
                                "revocation_fetch_crl = off\n",
                          flow="revocation_unknown = hard\n")
    gw.start()
    send_signed(gw, ca, "sgood", b"Hard.")
    wait_log(gw, "event=revocation-unknown action=defer")
    assert not list((gw.outbox / "new").glob("*")) \
        if (gw.outbox / "new").exists() else True
    with revocation_util.ocsp_server(ca, tmp_path):
        [msg] = gw.delivered(1)
    assert b"smime=pass" in head(msg) and b"Hard." in msg


def test_unknown_recipient_status_hard_fail_defers(gateway, ca):
    d = ca["dir"]
    gw = checking_gateway(gateway, ca,
                          extra="revocation_timeout = 1s\n",
                          profile="mode = encrypt\nmissing_key = split\n"
                                  "revocation_unknown = hard\n")
    gw.cli("key", "add", "rgood", d / "rgood.pem")
    gw.start()
    r = swaks(gw.out_port, "--to", f"rgood@{PARTNER}", "--body",
              "Not in clear.")
    assert r.returncode == 0, r.stdout.decode()
    wait_log(gw, f"rcpt=<rgood@{PARTNER}> event=revocation-unknown "
                 "action=defer")
    time.sleep(1)
    new = gw.outbox / "new"
    assert not (new.exists() and list(new.glob("*"))), "sent anyway"


def test_hard_fail_without_any_source_is_final_not_deferred(gateway, ca):
    # Nothing could ever answer for these certificates: hard-fail makes
    # that a failure at once, not a deferral that ends in a bounce.
    d = ca["dir"]
    gw = checking_gateway(gateway, ca, extra="revocation_timeout = 1s\n",
                          flow="revocation_unknown = hard\n",
                          profile="mode = sign-encrypt\nmissing_key = "
                                  "split\nrevocation_unknown = hard\n")
    gw.cli("key", "add", "rbare", d / "rbare.pem")
    gw.start()
    send_signed(gw, ca, "sbare", b"No source.")
    [msg] = gw.delivered(1)
    assert b"smime=fail (revocation-unknown)" in head(msg), head(msg)
    assert "names no OCSP responder" in gw.log.read_text()
    r = swaks(gw.out_port, "--to", f"rbare@{PARTNER}", "--body",
              "Signed, not encrypted.")
    assert r.returncode == 0, r.stdout.decode()
    msgs = gw.delivered(2)
    out = [m for m in msgs if b"Signed, not encrypted." in m][0]
    assert b"multipart/signed" in head(out), head(out)
    log = gw.log.read_text()
    assert f"rcpt=<rbare@{PARTNER}> event=revocation-unknown action=skip" \
        in log
    assert "action=defer" not in log


def test_bad_crl_file_is_a_config_error(gateway, ca, tmp_path):
    junk = tmp_path / "junk.crl"
    junk.write_text("not a CRL\n")
    gw = gateway(extra=f"crl_files = {junk}\n")
    r = gw.cli("check-config", "-c", gw.conf, check=False)
    assert r.returncode == 2
    assert b"crl_files" in r.stderr and b":5:" in r.stderr, r.stderr
