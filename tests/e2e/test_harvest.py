"""Harvesting through the running daemon (issue 6): certificates of
incoming signed mail, collected when a mail flow policy says so, are used
to encrypt the next outgoing message to that sender, which `openssl cms`
opens with the sender's key.  Self-signed, expired and failing signers are
not harvested by default, and are with harvest_on_failure.  Two updated
certificates within 48 hours raise exactly one alert (log, metrics, the
admin's mailbox).  A tiny repository evicts the least recently used."""
import json
import smtplib
import subprocess
import time
import urllib.request

from gateway_util import T, crlf, free_port, swaks, wait_log
from smime_util import mime_entity, openssl_sign

ADMIN = "admin@example.com"


def harvesting_gateway(gateway, pki, flow_extra="", extra=""):
    metrics = free_port()
    gw = gateway(profile="mode = sign-encrypt\nmissing_key = bounce\n",
                 extra=f"alert_to = {ADMIN}\nmetrics = 127.0.0.1:{metrics}\n"
                       + extra)
    gw.metrics_port = metrics
    gw.conf.write_text(gw.conf.read_text() + (
        "\n[flow partners]\nlisteners = in\naction = accept\n"
        "harvest = on\n" + flow_extra))
    gw.cli("ca", "import", pki / "root.pem")
    return gw


def send_signed(gw, pki, signer, frm, certfile="inter.pem", body=None,
                key=None, tamper=False):
    args = dict(signer=signer, from_=frm, to="bob@example.org",
                certfile=certfile)
    entity = mime_entity(b"Content-Type: text/plain\r\n\r\n"
                         + (body or f"Signed by {signer}.".encode())
                         + b"\r\n")
    if key is not None:  # a certificate whose key has another name
        pem = pki / f"{signer}.pem"
        out = subprocess.run(
            ["openssl", "cms", "-sign", "-signer", pem, "-inkey",
             pki / f"{key}.key", "-md", "sha256", "-certfile",
             pki / certfile, "-from", frm, "-to", "bob@example.org"],
            input=entity, capture_output=True, timeout=T, check=True).stdout
    else:
        out = openssl_sign(pki, entity, **args)
    if tamper:
        out = out.replace(b"Signed by", b"Signed for", 1)
    with smtplib.SMTP("127.0.0.1", gw.in_port, timeout=T) as s:
        s.sendmail(frm, ["bob@example.org"], crlf(out))


def harvested(gw):
    r = subprocess.run([str(gw.bin), "key", "harvested", "list", "--json",
                        "--store", str(gw.store)], capture_output=True,
                       timeout=T)
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)


def test_harvested_certificate_encrypts_the_reply(gateway, pki):
    gw = harvesting_gateway(gateway, pki).start()
    send_signed(gw, pki, "alice", "alice@example.com")
    gw.delivered(1)
    wait_log(gw, "event=harvest result=new")
    assert [h for h in harvested(gw)
            if "alice@example.com" in json.dumps(h)]
    # The next message to that partner leaves encrypted to it.
    r = swaks(gw.out_port, "--to", "alice@example.com", "--body",
              "Reply to a partner we never added.")
    assert r.returncode == 0, r.stdout.decode()
    msgs = gw.delivered(2)
    out = [m for m in msgs if b"Delivered-To: alice@example.com" in m][0]
    dec = subprocess.run(["openssl", "cms", "-decrypt", "-recip",
                          pki / "alice.pem", "-inkey", pki / "alice.key"],
                         input=out, capture_output=True, timeout=T)
    assert dec.returncode == 0, dec.stderr.decode()
    assert b"Reply to a partner we never added." in dec.stdout


def test_what_is_not_harvested_by_default(gateway, pki):
    gw = harvesting_gateway(gateway, pki).start()
    send_signed(gw, pki, "expired", "expired@example.com")
    send_signed(gw, pki, "dave", "dave@example.net", tamper=True)
    # a self-signed signer: a certificate made by another store
    other = gw.root / "other.db"
    subprocess.run([str(gw.bin), "cert", "create", "--store", other,
                    "--name", "p", "--cn", "Partner", "--san-email",
                    "self@example.net"], check=True, capture_output=True)
    (pki / "pw.txt").write_text("pw\n")
    subprocess.run([str(gw.bin), "cert", "export", "p", "--store", other,
                    "--p12", gw.root / "p.p12", "--pass-file",
                    pki / "pw.txt"], check=True, capture_output=True)
    subprocess.run(["openssl", "pkcs12", "-in", gw.root / "p.p12",
                    "-passin", "pass:pw", "-nodes", "-out",
                    pki / "selfp.pem"], check=True, capture_output=True)
    subprocess.run(["openssl", "pkcs12", "-in", gw.root / "p.p12",
                    "-passin", "pass:pw", "-nodes", "-nocerts", "-out",
                    pki / "selfp.key"], check=True, capture_output=True)
    send_signed(gw, pki, "selfp", "self@example.net", certfile=None)
    gw.delivered(3)
    wait_log(gw, "event=harvest result=skipped", 3)
    assert harvested(gw) == []
    log = gw.log.read_text()
    assert "expired" in log and "self-signed" in log
    assert "did not verify" in log


def test_harvest_on_failure_takes_them(gateway, pki):
    gw = harvesting_gateway(gateway, pki,
                            flow_extra="harvest_on_failure = on\n").start()
    send_signed(gw, pki, "dave", "dave@example.net", tamper=True)
    send_signed(gw, pki, "expired", "expired@example.com")
    gw.delivered(2)
    wait_log(gw, "event=harvest result=new", 2)
    text = json.dumps(harvested(gw))
    assert "dave@example.net" in text and "expired@example.com" in text


def test_two_updates_within_48_hours_raise_one_alert(gateway, pki):
    gw = harvesting_gateway(gateway, pki,
                            flow_extra="harvest_updated = on\n").start()
    send_signed(gw, pki, "bob", "bob@example.org")
    wait_log(gw, "event=harvest result=new")
    send_signed(gw, pki, "bob-renewed", "bob@example.org", key="bob")
    wait_log(gw, "event=harvest result=updated")
    assert "event=alert " not in gw.log.read_text()
    send_signed(gw, pki, "bob-third", "bob@example.org", key="bob")
    wait_log(gw, "event=harvest result=updated", 2)
    wait_log(gw, "event=alert kind=updated-certificates")
    # exactly one, also after a fourth message with the same certificate
    send_signed(gw, pki, "bob-third", "bob@example.org", key="bob")
    wait_log(gw, "event=harvest result=same")
    log = gw.log.read_text()
    assert log.count("event=alert kind=updated-certificates") == 1
    body = urllib.request.urlopen(
        f"http://127.0.0.1:{gw.metrics_port}/metrics", timeout=T).read()
    assert b"smimegate_alerts_total 1" in body
    # the admin's mailbox: the alert, besides the four messages
    msgs = gw.delivered(5)
    alerts = [m for m in msgs if f"Delivered-To: {ADMIN}".encode() in m]
    assert len(alerts) == 1
    assert b"[smimegate alert] updated-certificates" in alerts[0]
    assert b"bob@example.org" in alerts[0]


def test_repository_limit_evicts_least_recently_used(gateway, pki):
    gw = harvesting_gateway(gateway, pki,
                            extra="harvest_max_size = 2000\n").start()
    for n, (signer, frm) in enumerate((("alice", "alice@example.com"),
                                       ("dave", "dave@example.net"),
                                       ("bob", "bob@example.org"))):
        send_signed(gw, pki, signer, frm)
        wait_log(gw, "event=harvest result=new", n + 1)
        time.sleep(1.1)  # distinct harvest times
    wait_log(gw, "event=alert kind=harvest-repository-full")
    text = json.dumps(harvested(gw))
    assert "alice@example.com" not in text  # the oldest went first
    assert "bob@example.org" in text and "dave@example.net" in text
