"""The gateway daemon end to end: the real `smimegate serve` on 127.0.0.1,
real clients (swaks, smtplib), the maildir outbox as the next hop, and the
results checked by OpenSSL.  Each test starts its own daemon on free ports
and stops it by PID."""
import signal
import smtplib
import subprocess
import time

from gateway_util import T, crlf, org_cert, swaks
from smime_util import openssl_sign, mime_entity


def test_outgoing_mail_leaves_signed(gateway):
    gw = gateway().start()
    r = swaks(gw.out_port, "--body", "Hello from the gateway test.")
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    assert b"250 2.0.0" in r.stdout  # queued, with an enhanced code
    (msg,) = gw.delivered()
    assert b"multipart/signed" in msg and b"Return-Path: <sender@example.com>" in msg
    v = subprocess.run(["openssl", "cms", "-verify", "-CAfile", org_cert(gw)],
                       input=msg, capture_output=True, timeout=T)
    assert v.returncode == 0, v.stderr.decode()
    assert b"Hello from the gateway test." in v.stdout
    assert gw.stop() == 0
    log = gw.log.read_text()
    assert "event=signed" in log and "event=delivered" in log


def test_outgoing_sign_and_encrypt_to_partner(gateway, pki):
    gw = gateway(profile="mode = sign-encrypt\nmissing_key = bounce\n")
    gw.cli("key", "add", "bob", pki / "bob.pem")
    gw.start()
    r = swaks(gw.out_port, "--body", "For Bob only.", to="bob@example.org")
    assert r.returncode == 0, r.stdout.decode()
    (msg,) = gw.delivered()
    assert b"application/pkcs7-mime" in msg
    d = subprocess.run(["openssl", "cms", "-decrypt", "-recip",
                        pki / "bob.pem", "-inkey", pki / "bob.key"],
                       input=msg, capture_output=True, timeout=T)
    assert d.returncode == 0, d.stderr.decode()
    v = subprocess.run(["openssl", "cms", "-verify", "-CAfile",
                        org_cert(gw)], input=d.stdout, capture_output=True,
                       timeout=T)
    assert v.returncode == 0 and b"For Bob only." in v.stdout


def test_encrypting_profile_never_sends_in_clear(gateway):
    gw = gateway(profile="mode = sign-encrypt\nmissing_key = bounce\n")
    gw.start()
    r = swaks(gw.out_port, "--body", "secret", to="nokey@example.net")
    assert r.returncode == 0  # accepted: the 250 is a promise ...
    # ... kept by a bounce to the sender, not by sending in clear.
    (dsn,) = gw.delivered()
    head = dsn.split(b"\r\n\r\n", 1)[0]
    assert b"Return-Path: <>" in head
    assert b"Delivered-To: sender@example.com" in head
    assert b"multipart/report" in head
    assert b"Delivered-To: nokey@example.net" not in dsn
    assert b"secret" not in dsn.split(b"message/rfc822")[0]
    assert "event=bounced" in gw.log.read_text()


def test_incoming_signed_mail_gets_authentication_results(gateway, pki):
    gw = gateway()
    gw.cli("ca", "import", pki / "root.pem")
    gw.start()
    signed = openssl_sign(pki, mime_entity(
        b"Content-Type: text/plain\r\n\r\nSigned by a partner.\r\n"),
        from_="alice@example.com", to="bob@example.org")
    # A forged result claiming to be us must not survive.
    signed = b"Authentication-Results: gw.test; smime=pass\r\n" + signed
    with smtplib.SMTP("127.0.0.1", gw.in_port, timeout=T) as s:
        s.sendmail("alice@example.com", ["bob@example.org"], crlf(signed))
    (msg,) = gw.delivered()
    head = msg.split(b"\r\n\r\n", 1)[0].decode()
    results = [ln for ln in head.split("\r\n")
               if ln.startswith("Authentication-Results:")]
    assert len(results) == 1, head
    assert "smime=pass" in results[0]
    assert "alice@example.com" in head  # body.smime-identifier


def test_incoming_encrypted_mail_arrives_decrypted(gateway, pki):
    gw = gateway()
    gw.cli("cert", "import", pki / "alice.p12", "--pass-file",
           pki / "pass.txt", "--name", "alice")
    gw.start()
    env = subprocess.run(
        ["openssl", "cms", "-encrypt", "-aes256", pki / "alice.pem"],
        input=b"To: bob@example.org\r\nSubject: sealed\r\n"
              b"Content-Type: text/plain\r\n\r\nOpened at the edge.\r\n",
        capture_output=True, timeout=T, check=True).stdout
    with smtplib.SMTP("127.0.0.1", gw.in_port, timeout=T) as s:
        s.sendmail("partner@example.net", ["bob@example.org"], crlf(env))
    (msg,) = gw.delivered()
    assert b"Opened at the edge." in msg
    assert b"pkcs7-mime" not in msg
    assert b"Authentication-Results: gw.test; smime=none" in msg


def test_incoming_envelope_for_another_key_is_delivered_as_is(gateway, pki):
    """Not for our keys: delivered still encrypted, never bounced."""
    gw = gateway().start()
    env = subprocess.run(
        ["openssl", "cms", "-encrypt", "-aes256", pki / "bob.pem"],
        input=b"Subject: for bob's own key\r\nContent-Type: text/plain"
              b"\r\n\r\nOnly Bob opens this.\r\n",
        capture_output=True, timeout=T, check=True).stdout
    with smtplib.SMTP("127.0.0.1", gw.in_port, timeout=T) as s:
        s.sendmail("partner@example.net", ["bob@example.org"], crlf(env))
    (msg,) = gw.delivered()
    assert b"pkcs7-mime" in msg and b"Only Bob" not in msg
    assert "event=bounced" not in gw.log.read_text()


def test_no_open_relay(gateway):
    gw = gateway(relay_from="192.0.2.0/24").start()
    # Outgoing: nobody outside relay_from may relay (no signing oracle).
    r = swaks(gw.out_port, "--body", "x", to="anyone@example.net")
    assert r.returncode != 0 and b"554 5.7.1" in r.stdout
    # Incoming: anyone may send to our local domains, to nothing else.
    r = swaks(gw.in_port, "--body", "x", to="bob@example.org")
    assert r.returncode == 0, r.stdout.decode()
    r = swaks(gw.in_port, "--body", "x", to="bob@elsewhere.example")
    assert r.returncode != 0 and b"554 5.7.1" in r.stdout


def test_accepted_mail_survives_sigkill(gateway):
    """A 250 is a promise: the message is in the spool before it.  The
    outbox is unwritable, so nothing is delivered; SIGKILL; the outbox is
    fixed; the next start delivers."""
    gw = gateway(extra="retry_min = 1s\nretry_max = 2s\n")
    gw.outbox.mkdir()
    (gw.outbox / "new").write_text("not a directory")  # delivery fails
    gw.start()
    r = swaks(gw.out_port, "--body", "Survive a crash.")
    assert r.returncode == 0 and b"250 2.0.0" in r.stdout
    time.sleep(0.5)
    gw.stop(signal.SIGKILL)
    (gw.outbox / "new").unlink()
    gw.start()
    (msg,) = gw.delivered()
    assert b"Survive a crash." in msg


def test_reload_keeps_running_on_a_bad_file(gateway):
    gw = gateway().start()
    good = gw.conf.read_text()
    gw.conf.write_text(good + "\nthis is not valid\n")
    gw.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert gw.proc.poll() is None
    assert "reload-refused" in gw.log.read_text()
    assert "smimegate.conf:" in gw.log.read_text()  # FILE:LINE
    r = swaks(gw.out_port, "--body", "still serving")
    assert r.returncode == 0
    gw.delivered()


def test_check_config(smimegate, tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text("[listener a]\nlisten = 127.0.0.1:2525\nrole = maybe\n")
    r = subprocess.run([smimegate, "check-config", "-c", conf],
                       capture_output=True, timeout=T)
    assert r.returncode == 2
    assert f"{conf}:3:".encode() in r.stderr
    # the syntax is right: then what the daemon would open is checked
    store = tmp_path / "s.db"
    conf.write_text(f"store = {store}\n[listener a]\n"
                    "listen = 127.0.0.1:2525\nrole = incoming\n")
    r = subprocess.run([smimegate, "check-config", "-c", conf],
                       capture_output=True, timeout=T)
    assert r.returncode == 2
    assert f"store {store}: ".encode() in r.stderr, r.stderr
    r = subprocess.run([smimegate, "store", "init", "--store", store],
                       capture_output=True, timeout=T)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([smimegate, "check-config", "-c", conf],
                       capture_output=True, timeout=T)
    assert r.returncode == 0, r.stderr
    assert f"  store: {store}\n".encode() in r.stdout


def test_unusable_signers_are_warned_at_check_and_start(gateway):
    # a profile whose signer cannot sign would bounce all it signs, and a
    # bad notify_signer sends notifications unsigned: both are said
    # before the first message, by check-config and by the start
    gw = gateway(extra="notify_signer = nosuch\n")
    gw.conf.write_text(gw.conf.read_text().replace("signer = org",
                                                   "signer = gone"))
    r = gw.cli("check-config", "-c", gw.conf)
    err = r.stderr.decode()
    assert ('warning: [profile org] signer "gone" cannot sign: ' in err
            and "; the mail it signs bounces" in err), err
    assert ('warning: notify_signer "nosuch" cannot sign: ' in err
            and "; notifications go unsigned" in err), err
    gw.start()
    log = gw.log.read_text()
    # (the log quotes values with ' inside its "")
    assert ('event=warning reason="[profile org] signer \'gone\' cannot '
            'sign: no key named gone; the mail it signs bounces"') in log, log
    # a reload names them again; a good signer is not warned about
    gw.conf.write_text(gw.conf.read_text().replace("signer = gone",
                                                   "signer = org"))
    gw.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + T
    while "event=reloaded" not in gw.log.read_text():
        assert time.time() < deadline, gw.log.read_text()
        time.sleep(0.05)
    log = gw.log.read_text()
    assert log.count("signer 'gone'") == 1
    assert log.count("notify_signer 'nosuch'") == 2
    r = gw.cli("check-config", "-c", gw.conf)
    assert "[profile org]" not in r.stderr.decode()


def test_check_config_loads_the_listeners_tls_files(gateway):
    gw = gateway()
    cert, key = gw.root / "tls.crt", gw.root / "tls.key"
    other = gw.root / "other.key"
    for k in (key, other):
        r = subprocess.run(["openssl", "genpkey", "-algorithm", "EC",
                            "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
                            k], capture_output=True, timeout=T)
        assert r.returncode == 0, r.stderr.decode()
    r = subprocess.run(["openssl", "req", "-x509", "-key", key, "-out", cert,
                        "-subj", "/CN=gw.test", "-days", "2"],
                       capture_output=True, timeout=T)
    assert r.returncode == 0, r.stderr.decode()
    base = gw.conf.read_text()
    gw.conf.write_text(base.replace(
        "[listener out]\n",
        f"[listener out]\ntls_cert = {cert}\ntls_key = {other}\n"))
    r = gw.cli("check-config", "-c", gw.conf, check=False)
    assert r.returncode == 2
    assert "listener out: " in r.stderr.decode()
    assert "does not match the certificate" in r.stderr.decode()
    gw.conf.write_text(base.replace(
        "[listener out]\n",
        f"[listener out]\ntls_cert = {cert}\ntls_key = {key}\n"))
    assert gw.cli("check-config", "-c", gw.conf).returncode == 0
