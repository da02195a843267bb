"""Message filters and the quarantine through the running daemon (issue 5):
the seed's filter, written exactly as in seed 002, quarantines S/MIME
mail that did not verify; a good message is delivered; `smimegate
quarantine release` delivers the quarantined one.  Filters that edit
headers, drop and bounce on the way out.  Malformed filter files stop the
start with FILE:LINE."""
import smtplib
import subprocess
import time

from gateway_util import T, crlf, swaks
from smime_util import openssl_sign, mime_entity

SEED = ('quarantine_smime_messages: if (smime-gateway-message and not '
        'smime-gateway-verified) { quarantine("Policy"); }\n')


def filters(gw, text):
    path = gw.root / "filters.conf"
    gw.root.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return f"message_filters = {path}\n"


def quarantine(gw, *args, check=True):
    r = subprocess.run([str(gw.bin), "quarantine", "-c", str(gw.conf),
                        *map(str, args)], capture_output=True, timeout=T)
    if check:
        assert r.returncode == 0, r.stderr.decode()
    return r


def wait_for(pred, what, gw, timeout=T):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}; log:\n{gw.log.read_text()}")


def send_in(gw, data, frm="alice@example.com", to="bob@example.org"):
    with smtplib.SMTP("127.0.0.1", gw.in_port, timeout=T) as s:
        s.sendmail(frm, [to], crlf(data))


def signed_by_partner(pki, text):
    return openssl_sign(pki, mime_entity(
        b"Content-Type: text/plain\r\n\r\n" + text + b"\r\n"),
        from_="alice@example.com", to="bob@example.org")


def test_seed_filter_quarantines_what_did_not_verify(gateway, pki):
    gw = gateway()
    gw.conf.write_text(gw.conf.read_text().replace(
        "hostname = gw.test\n", "hostname = gw.test\n" + filters(gw, SEED)))
    gw.cli("ca", "import", pki / "root.pem")
    gw.start()

    # A good signed message is delivered.
    send_in(gw, signed_by_partner(pki, b"Good and signed."))
    (good,) = gw.delivered()
    assert b"Good and signed." in good and b"smime=pass" in good

    # A tampered one goes to the Policy quarantine, not to the outbox.
    bad = signed_by_partner(pki, b"Pay 100 EUR.").replace(b"Pay 100", b"Pay 900")
    send_in(gw, bad)
    # An envelope for somebody else's key: cannot be decrypted.
    env = subprocess.run(
        ["openssl", "cms", "-encrypt", "-aes256", pki / "bob.pem"],
        input=b"Subject: not for us\r\nContent-Type: text/plain\r\n\r\n"
              b"Sealed for Carol.\r\n",
        capture_output=True, timeout=T, check=True).stdout
    send_in(gw, env)
    wait_for(lambda: gw.log.read_text().count("event=quarantined") == 2,
             "two messages quarantined", gw)
    time.sleep(0.5)
    assert len(list((gw.outbox / "new").glob("*"))) == 1

    listing = quarantine(gw, "list", "--json")
    import json
    entries = json.loads(listing.stdout)
    assert len(entries) == 2, entries
    assert {e["quarantine"] for e in entries} == {"Policy"}
    assert all(e["rule"] == "quarantine_smime_messages" for e in entries)
    log = gw.log.read_text()
    assert "action=quarantine" in log and "filter=quarantine_smime_messages" \
        in log

    # The tampered one, released, is delivered as it was quarantined:
    # with its failed Authentication-Results.
    tampered = [e for e in entries
                if "Pay 900" in quarantine(gw, "show", e["id"], "--raw")
                .stdout.decode(errors="replace")]
    assert len(tampered) == 1
    quarantine(gw, "release", tampered[0]["id"])
    msgs = gw.delivered(2)
    released = [m for m in msgs if b"Pay 900" in m]
    assert len(released) == 1
    assert b"smime=fail" in released[0]
    assert "event=released" in gw.log.read_text()
    left = json.loads(quarantine(gw, "list", "--json").stdout)
    assert [e["id"] for e in left] != [tampered[0]["id"]] and len(left) == 1
    # Released mail does not meet the filters again.
    time.sleep(0.5)
    assert gw.log.read_text().count("event=quarantined") == 2


def test_outgoing_filters_edit_drop_and_bounce(gateway):
    gw = gateway()
    rules = (
        'tag: if (subject == "^Quarterly") '
        '{ add-header("X-Classified", "internal"); remove-header("X-Junk"); }\n'
        'nodraft: if (body-contains("DRAFT ONLY")) { drop(); }\n'
        'nozip: if (attachment-filename == "\\\\.zip$") { bounce(); }\n')
    gw.conf.write_text(gw.conf.read_text().replace(
        "hostname = gw.test\n", "hostname = gw.test\n" + filters(gw, rules)))
    gw.start()

    r = swaks(gw.out_port, "--header", "Subject: Quarterly figures",
              "--header", "X-Junk: yes", "--body", "Numbers.")
    assert r.returncode == 0, r.stdout.decode()
    (msg,) = gw.delivered()
    head = msg.split(b"\r\n\r\n", 1)[0]
    assert b"X-Classified: internal" in head
    assert b"X-Junk" not in head
    assert b"multipart/signed" in head  # and still signed

    r = swaks(gw.out_port, "--body", "DRAFT ONLY, do not send")
    assert r.returncode == 0
    wait_for(lambda: "event=dropped" in gw.log.read_text(), "dropped", gw)

    r = swaks(gw.out_port, "--attach-type", "application/zip",
              "--attach-name", "x.zip", "--attach", "@/etc/hostname",
              "--body", "see attached")
    assert r.returncode == 0
    # A bounce: a notification to the sender, in the outbox too.
    msgs = gw.delivered(2)
    dsn = [m for m in msgs if b"multipart/report" in m]
    assert len(dsn) == 1
    assert b"5.7.1" in dsn[0]


def test_malformed_filters_stop_the_start(gateway):
    gw = gateway()
    gw.conf.write_text(gw.conf.read_text().replace(
        "hostname = gw.test\n",
        "hostname = gw.test\n" + filters(
            gw, SEED + 'second: if (subject == "x" { drop(); }\n')))
    r = subprocess.run([str(gw.bin), "check-config", "-c", str(gw.conf)],
                       capture_output=True, timeout=T)
    assert r.returncode != 0
    assert f"{gw.root / 'filters.conf'}:2:" in r.stderr.decode()
    # An unknown quarantine is an error too, naming the line.
    (gw.root / "filters.conf").write_text(
        'q: if (true) { quarantine("Nowhere"); }\n')
    r = subprocess.run([str(gw.bin), "check-config", "-c", str(gw.conf)],
                       capture_output=True, timeout=T)
    assert r.returncode != 0 and "filters.conf:1:" in r.stderr.decode()
    assert "Nowhere" in r.stderr.decode()
    # The daemon refuses to start on it, naming the place.
    r = subprocess.run([str(gw.bin), "serve", "-c", str(gw.conf)],
                       capture_output=True, timeout=T)
    assert r.returncode != 0 and "filters.conf:1:" in r.stderr.decode()


def test_notify_sends_a_notice_and_delivers_the_message(gateway):
    gw = gateway()
    rules = 'watch: if (subject == "merger") { notify("security@example.net"); }\n'
    gw.conf.write_text(gw.conf.read_text().replace(
        "hostname = gw.test\n", "hostname = gw.test\n" + filters(gw, rules)))
    gw.start()
    r = swaks(gw.out_port, "--header", "Subject: the merger plan",
              "--body", "Numbers.")
    assert r.returncode == 0
    msgs = gw.delivered(2)
    notice = [m for m in msgs if b"Delivered-To: security@example.net" in m]
    assert len(notice) == 1, msgs
    assert b"filter watch matched" in notice[0]
    assert b"the merger plan" in notice[0]
    assert b"Numbers." not in notice[0]  # no content in the notice
    original = [m for m in msgs if m is not notice[0]]
    assert b"multipart/signed" in original[0]
    assert "event=notified" in gw.log.read_text()


def test_sighup_reloads_filters_or_keeps_the_old_ones(gateway):
    import signal
    gw = gateway()
    gw.conf.write_text(gw.conf.read_text().replace(
        "hostname = gw.test\n", "hostname = gw.test\n" + filters(
            gw, 'mark: if (true) { add-header("X-Rules", "one"); }\n')))
    gw.start()
    swaks(gw.out_port, "--body", "first")
    (first,) = gw.delivered(1)
    assert b"X-Rules: one" in first

    (gw.root / "filters.conf").write_text(
        'mark: if (true) { add-header("X-Rules", "two"); }\n')
    gw.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "event=reloaded" in gw.log.read_text(), "reload", gw)
    swaks(gw.out_port, "--body", "second")
    msgs = gw.delivered(2)
    assert any(b"X-Rules: two" in m for m in msgs)

    (gw.root / "filters.conf").write_text('mark: if (true { drop(); }\n')
    gw.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload-refused" in gw.log.read_text(), "refusal", gw)
    assert "filters.conf:1:" in gw.log.read_text()
    swaks(gw.out_port, "--body", "third")
    msgs = gw.delivered(3)
    third = [m for m in msgs if b"third" in m]
    assert len(third) == 1 and b"X-Rules: two" in third[0]


def test_retention_releases_or_deletes_at_expiry(gateway):
    gw = gateway()
    rules = ('hold: if (subject == "hold") { quarantine("Hold"); }\n'
             'gone: if (subject == "gone") { quarantine("Policy"); }\n')
    gw.conf.write_text(gw.conf.read_text().replace(
        "hostname = gw.test\n", "hostname = gw.test\n" + filters(gw, rules))
        + "\n[quarantine Hold]\nretention = 2s\nat_expiry = release\n"
          "\n[quarantine Policy]\nretention = 2s\n")
    gw.start()
    swaks(gw.out_port, "--header", "Subject: hold", "--body", "held a bit")
    swaks(gw.out_port, "--header", "Subject: gone", "--body", "deleted")
    wait_for(lambda: gw.log.read_text().count("event=quarantined") == 2,
             "two quarantined", gw)
    (msg,) = gw.delivered(1, timeout=30)  # released at expiry
    assert b"held a bit" in msg and b"multipart/signed" in msg
    wait_for(lambda: "action=delete" in gw.log.read_text(), "deleted", gw)
    import json
    assert json.loads(quarantine(gw, "list", "--json").stdout) == []
    time.sleep(1)
    assert len(list((gw.outbox / "new").glob("*"))) == 1
