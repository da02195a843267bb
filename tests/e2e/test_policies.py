"""Mail policies, sending profiles and content filters through the running
daemon (issue 5): recipients of different policies get separate copies;
missing_key bounce, drop and split; a content filter that encrypts only
"Confidential" mail; an on-delivery action followed by a filter that still
runs; a final action after which none runs.  What leaves encrypted is
opened with `openssl cms` and the recipient's key, never by our code."""
import subprocess

from gateway_util import T, swaks

PARTNER = "bob@example.org"     # pki: bob.pem / bob.key
STRANGER = "nobody@other.example"  # no certificate anywhere


def outbox(gw, n):
    return gw.delivered(n)


def opens_for_bob(pki, msg):
    r = subprocess.run(["openssl", "cms", "-decrypt", "-recip",
                        pki / "bob.pem", "-inkey", pki / "bob.key"],
                       input=msg, capture_output=True, timeout=T)
    return r.returncode == 0, r.stdout


def is_encrypted(msg):
    head = msg.split(b"\r\n\r\n", 1)[0]
    return b"application/pkcs7-mime" in head and b"enveloped" in head


def is_signed_plain(msg):
    head = msg.split(b"\r\n\r\n", 1)[0]
    return b"multipart/signed" in head


def recipients_of(msg):
    head = msg.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    return sorted(ln.split(":", 1)[1].strip() for ln in head.split("\r\n")
                  if ln.startswith("Delivered-To:"))


def make(gateway, pki, profile, extra="", sections=""):
    gw = gateway(profile=profile, extra=extra)
    gw.conf.write_text(gw.conf.read_text() + sections)
    gw.cli("key", "add", "bob", pki / "bob.pem")
    return gw


def test_recipients_of_two_policies_get_their_own_copies(gateway, pki):
    gw = make(gateway, pki, "mode = sign\n", sections=(
        "\n[profile partners]\nsigner = org\nmode = sign-encrypt\n"
        "missing_key = bounce\n"
        "\n[policy partners]\ndirection = outgoing\n"
        "recipients = @example.org\nprofile = partners\n"))
    gw.start()
    r = swaks(gw.out_port, "--to", f"{PARTNER},{STRANGER}",
              "--body", "For both of you.")
    assert r.returncode == 0, r.stdout.decode()
    msgs = outbox(gw, 2)
    enc = [m for m in msgs if is_encrypted(m)]
    plain = [m for m in msgs if is_signed_plain(m)]
    assert len(enc) == 1 and len(plain) == 1
    assert recipients_of(enc[0]) == [PARTNER]
    assert recipients_of(plain[0]) == [STRANGER]
    ok, out = opens_for_bob(pki, enc[0])
    assert ok and b"For both of you." in out
    log = gw.log.read_text()
    assert f"rcpt=<{PARTNER}> policy=partners" in log
    assert f"rcpt=<{STRANGER}> policy=-" in log
    assert "event=split" in log


def _missing(gateway, pki, action):
    gw = make(gateway, pki,
              f"mode = sign-encrypt\nmissing_key = {action}\n")
    gw.start()
    r = swaks(gw.out_port, "--to", f"{PARTNER},{STRANGER}",
              "--body", f"missing key: {action}")
    assert r.returncode == 0, r.stdout.decode()
    return gw


def test_missing_key_bounce(gateway, pki):
    gw = _missing(gateway, pki, "bounce")
    (msg,) = outbox(gw, 1)  # only the notification to the sender
    assert b"multipart/report" in msg and b"missing key: bounce" not in \
        msg.split(b"message/rfc822")[0]
    assert f"rcpt=<{STRANGER}> decision=bounce" in gw.log.read_text()


def test_missing_key_drop(gateway, pki):
    gw = _missing(gateway, pki, "drop")
    (msg,) = outbox(gw, 1)
    assert is_encrypted(msg) and recipients_of(msg) == [PARTNER]
    ok, out = opens_for_bob(pki, msg)
    assert ok and b"missing key: drop" in out
    log = gw.log.read_text()
    assert f"rcpt=<{STRANGER}> decision=drop" in log
    assert f"rcpt=<{PARTNER}> decision=encrypt" in log


def test_missing_key_split(gateway, pki):
    gw = _missing(gateway, pki, "split")
    msgs = outbox(gw, 2)
    enc = [m for m in msgs if is_encrypted(m)]
    plain = [m for m in msgs if is_signed_plain(m)]
    assert len(enc) == 1 and len(plain) == 1, msgs
    assert recipients_of(enc[0]) == [PARTNER]
    assert recipients_of(plain[0]) == [STRANGER]
    assert b"missing key: split" in plain[0]
    ok, out = opens_for_bob(pki, enc[0])
    assert ok and b"missing key: split" in out
    log = gw.log.read_text()
    assert f"rcpt=<{STRANGER}> decision=plain" in log
    # nothing else was delivered: two messages only
    assert len(list((gw.outbox / "new").glob("*"))) == 2


def test_content_filter_encrypts_only_confidential_mail(gateway, pki):
    gw = gateway(profile="mode = sign\n")
    rules = gw.root / "content.conf"
    rules.write_text(
        'confidential: if (subject-contains("Confidential") or '
        'body-contains("Confidential")) { smime-sign-encrypt("secret"); }\n'
        'after_final: if (true) { add-header("X-After-Final", "yes"); }\n')
    gw.conf.write_text(gw.conf.read_text() + (
        "\n[profile secret]\nsigner = org\nmode = sign-encrypt\n"
        "missing_key = bounce\n"
        f"\n[policy everyone]\ndirection = outgoing\n"
        f"content_filters = {rules}\n"))
    gw.cli("key", "add", "bob", pki / "bob.pem")
    gw.start()
    swaks(gw.out_port, "--to", PARTNER, "--body", "Lunch at noon?")
    swaks(gw.out_port, "--to", PARTNER, "--header",
          "Subject: Confidential: figures", "--body", "Q3 numbers")
    swaks(gw.out_port, "--to", PARTNER, "--body",
          "This is Confidential, in the body.")
    msgs = outbox(gw, 3)
    enc = [m for m in msgs if is_encrypted(m)]
    plain = [m for m in msgs if is_signed_plain(m)]
    assert len(enc) == 2 and len(plain) == 1
    assert b"Lunch at noon?" in plain[0]
    for m in enc:
        ok, _ = opens_for_bob(pki, m)
        assert ok
        # a final action: the filter after it did not run
        assert b"X-After-Final" not in m.split(b"\r\n\r\n", 1)[0]
    # the other message went on to the next filter
    assert b"X-After-Final: yes" in plain[0].split(b"\r\n\r\n", 1)[0]


def test_on_delivery_action_lets_later_filters_run(gateway, pki):
    gw = gateway(profile="mode = sign\n")
    rules = gw.root / "content.conf"
    rules.write_text(
        'mark: if (body-contains("Confidential")) '
        '{ smime-sign-encrypt-on-delivery("secret"); }\n'
        'tag: if (body-contains("Confidential")) '
        '{ add-header("X-Classified", "confidential"); }\n')
    gw.conf.write_text(gw.conf.read_text() + (
        "\n[profile secret]\nsigner = org\nmode = sign-encrypt\n"
        "missing_key = bounce\n"
        f"\n[policy everyone]\ndirection = outgoing\n"
        f"content_filters = {rules}\n"))
    gw.cli("key", "add", "bob", pki / "bob.pem")
    gw.start()
    swaks(gw.out_port, "--to", PARTNER, "--body", "Confidential plans")
    (msg,) = outbox(gw, 1)
    assert is_encrypted(msg)
    assert b"X-Classified: confidential" in msg.split(b"\r\n\r\n", 1)[0]
    ok, out = opens_for_bob(pki, msg)
    assert ok and b"Confidential plans" in out


def test_policy_errors_name_the_line(gateway, tmp_path):
    gw = gateway()
    bad = gw.conf.read_text() + ("\n[policy p]\ndirection = outgoing\n"
                                 "recipients = /[unclosed/\n")
    gw.conf.write_text(bad)
    r = subprocess.run([str(gw.bin), "check-config", "-c", str(gw.conf)],
                       capture_output=True, timeout=T)
    assert r.returncode != 0
    n = bad.count("\n", 0, bad.index("recipients = /[")) + 1
    assert f"smimegate.conf:{n}:" in r.stderr.decode()
    gw.conf.write_text(gw.conf.read_text().replace(
        "recipients = /[unclosed/", "profile = nosuch"))
    r = subprocess.run([str(gw.bin), "check-config", "-c", str(gw.conf)],
                       capture_output=True, timeout=T)
    assert r.returncode != 0 and "nosuch" in r.stderr.decode()


def _triple(pki):
    """sign (alice) -> encrypt (to alice, our key here) -> sign (alice), by
    `openssl cms` (RFC 2634 triple wrap)."""
    from smime_util import openssl_encrypt, openssl_sign, mime_entity
    inner = openssl_sign(pki, b"Content-Type: text/plain\r\n\r\n"
                              b"Triple wrapped.\r\n", subject=None,
                         from_=None, to=None)
    env = openssl_encrypt(pki, mime_entity(inner), recipients=("alice",),
                          subject=None, from_=None, to=None)
    return openssl_sign(pki, mime_entity(env))


def _incoming(gateway, pki, signature):
    import smtplib
    from gateway_util import crlf
    gw = gateway()
    gw.conf.write_text(gw.conf.read_text().replace(
        "role = incoming\n", f"role = incoming\nsignature = {signature}\n"))
    gw.cli("ca", "import", pki / "root.pem")
    gw.cli("cert", "import", pki / "alice.p12", "--pass-file",
           pki / "pass.txt", "--name", "alice")
    gw.start()
    with smtplib.SMTP("127.0.0.1", gw.in_port, timeout=T) as s:
        s.sendmail("alice@example.com", ["bob@example.org"],
                   crlf(_triple(pki)))
    (msg,) = gw.delivered()
    return gw, msg


def test_triple_wrapped_keep_signature(gateway, pki):
    gw, msg = _incoming(gateway, pki, "keep")
    head = msg.split(b"\r\n\r\n", 1)[0]
    # the outer signature and the envelope are opened; the inner
    # signature stays, and still verifies with openssl
    assert b"multipart/signed" in head and b"pkcs7-mime" not in head
    assert b"smime=pass" in head
    from smime_util import openssl_verify
    assert b"Triple wrapped." in openssl_verify(pki, msg).stdout


def test_triple_wrapped_remove_signature(gateway, pki):
    gw, msg = _incoming(gateway, pki, "remove")
    head = msg.split(b"\r\n\r\n", 1)[0]
    assert b"multipart/signed" not in head and b"pkcs7" not in msg
    assert b"smime=pass" in head and b"Triple wrapped." in msg


import pytest  # noqa: E402


@pytest.mark.parametrize("mode,form", [
    ("sign", "detached"), ("sign", "opaque"), ("encrypt", "detached"),
    ("sign-encrypt", "opaque"), ("triple", "detached")])
def test_each_profile_mode_and_form(gateway, pki, mode, form):
    """What leaves is opened and verified by openssl cms alone."""
    gw = make(gateway, pki, f"mode = {mode}\nform = {form}\n"
                            "missing_key = bounce\n")
    org = gw.root / "org.pem"
    org.write_bytes(gw.cli("cert", "export", "org", "--pem").stdout)
    gw.start()
    r = swaks(gw.out_port, "--to", PARTNER, "--body", f"mode {mode}")
    assert r.returncode == 0, r.stdout.decode()
    (msg,) = outbox(gw, 1)
    layers = []
    for _ in range(4):
        head = msg.split(b"\r\n\r\n", 1)[0].lower()
        if b"enveloped-data" in head:
            ok, msg = opens_for_bob(pki, msg)
            assert ok
            layers.append("encrypted")
        elif b"multipart/signed" in head or b"signed-data" in head:
            v = subprocess.run(["openssl", "cms", "-verify", "-CAfile", org],
                               input=msg, capture_output=True, timeout=T)
            assert v.returncode == 0, v.stderr.decode()
            msg = v.stdout.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            layers.append("signed-opaque" if b"signed-data" in head
                          else "signed")
        else:
            break
    want = {"sign": ["signed"], "encrypt": ["encrypted"],
            "sign-encrypt": ["encrypted", "signed"],
            "triple": ["signed", "encrypted", "signed"]}[mode]
    if form == "opaque":
        want = [x.replace("signed", "signed-opaque") for x in want]
    assert layers == want
    assert f"mode {mode}".encode() in msg


def test_mail_already_signed_by_the_user_is_not_signed_again(gateway, pki):
    import smtplib
    from gateway_util import crlf
    from smime_util import openssl_sign
    gw = make(gateway, pki, "mode = sign\n")
    gw.start()
    signed = openssl_sign(pki, b"Content-Type: text/plain\r\n\r\n"
                               b"Signed by my own client.\r\n",
                          from_="sender@example.com", to=PARTNER)
    with smtplib.SMTP("127.0.0.1", gw.out_port, timeout=T) as s:
        s.sendmail("sender@example.com", [PARTNER], crlf(signed))
    (msg,) = outbox(gw, 1)
    assert signed.count(b"smime.p7s") > 0
    assert msg.count(b"smime.p7s") == signed.count(b"smime.p7s")
    assert "decision=pass-through reason=already-smime" in \
        gw.log.read_text()
