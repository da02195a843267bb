"""Interoperability of smimegate with `openssl cms`, in both directions.

smimegate -> openssl: what smimegate signs/encrypts, openssl verifies/decrypts.
openssl -> smimegate: what openssl signs/encrypts, smimegate verifies/decrypts.
"""

import calendar
import json
import re
import time

import pytest

from smime_util import (ATTACHMENT_BYTES, EIGHTBIT_TEXT, LONG_LINE, SAMPLES,
                        attachment_of, big_attachment_bytes, msg_big, check_ok, cms_print, content_type,
                        extract_cms_der, extract_signed_part, get_header,
                        header_names, leaf_parts, mime_entity, msg_8bit,
                        msg_plain_lf, msg_routing_headers, openssl,
                        openssl_decrypt, openssl_encrypt, openssl_sign,
                        openssl_verify, openssl_verify_raw, split_message,
                        text_of)

DIGESTS = {
    "sha256": ("sha-256", "2.16.840.1.101.3.4.2.1"),
    "sha384": ("sha-384", "2.16.840.1.101.3.4.2.2"),
    "sha512": ("sha-512", "2.16.840.1.101.3.4.2.3"),
}
CIPHERS = {
    # --cipher: (openssl print name, smime-type)
    "aes-128-cbc": ("aes-128-cbc", "enveloped-data"),
    "aes-256-cbc": ("aes-256-cbc", "enveloped-data"),
    "aes-128-gcm": ("aes-128-gcm", "authEnveloped-data"),
    "aes-256-gcm": ("aes-256-gcm", "authEnveloped-data"),
}
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def signer_info_digest(printed):
    m = re.search(r"signerInfos:.*?digestAlgorithm:\s*\n\s*algorithm: (\S+)",
                  printed, re.S)
    assert m, "no signerInfo digestAlgorithm in CMS print"
    return m.group(1)


def signed_attrs(printed):
    m = re.search(r"signedAttrs:(.*?)signatureAlgorithm:", printed, re.S)
    assert m, "no signedAttrs in CMS print"
    return m.group(1)


def signing_time_epoch(printed):
    m = re.search(r"signingTime \(1\.2\.840\.113549\.1\.9\.5\)\s*\n\s*set:"
                  r"\s*\n\s*(?:UTCTIME|GENERALIZEDTIME):(.*? GMT)", printed)
    assert m, "no signingTime value in CMS print"
    return calendar.timegm(time.strptime(m.group(1).replace("  ", " "),
                                         "%b %d %H:%M:%S %Y GMT"))


def content_cipher(printed):
    m = re.search(r"contentEncryptionAlgorithm:\s*\n\s*algorithm: (\S+)",
                  printed)
    assert m, "no contentEncryptionAlgorithm in CMS print"
    return m.group(1)


def assert_outer_headers(out, original):
    """The identity headers of ORIGINAL are still the outer headers."""
    for name in ("From", "To", "Cc", "Subject", "Date", "Message-ID"):
        want = get_header(original, name)
        if want is not None:
            assert get_header(out, name) == want, f"outer {name} changed"
    assert (get_header(out, "MIME-Version") or "").strip() == "1.0"


def assert_line_ends_like(out, msg):
    if b"\r\n" in msg:
        assert re.search(rb"(?<!\r)\n", out) is None, \
            "CRLF input but output has bare LF line ends"
    else:
        assert b"\r" not in out, "LF input but output contains CR"


def serial_hex(pki, name):
    out = openssl("x509", "-in", pki / f"{name}.pem", "-noout",
                  "-serial").stdout.decode()
    return out.strip().split("=", 1)[1].lstrip("0").lower()


def norm_serial(s):
    return s.replace(":", "").lower().lstrip("0") if s else s


def verify_json(run, pki, msg, extra=()):
    proc = run(["verify", "--trust", pki / "trust.pem", "--json"]
               + list(extra), input=msg)
    try:
        res = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(
            f"verify --json stdout is not one JSON object (exit "
            f"{proc.returncode}): {proc.stdout[:500]!r} / stderr "
            f"{proc.stderr[:500]!r}")
    assert isinstance(res, dict)
    return proc, res


# ---------------------------------------------------------------------------
# smimegate signs, openssl verifies
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("digest", sorted(DIGESTS))
def test_sign_detached_openssl_verifies(smime, pki, digest):
    msg = msg_plain_lf()
    out = smime.sign(msg, digest=digest)

    ctype, params = content_type(out)
    assert ctype == "multipart/signed"
    assert params.get("protocol", "").lower() == "application/pkcs7-signature"
    assert params.get("micalg", "").lower() == DIGESTS[digest][0]
    assert_outer_headers(out, msg)

    # openssl's own S/MIME parser, trust = root only (chain must be inside)
    content = openssl_verify(pki, out).stdout
    assert text_of(content) == text_of(msg)

    # raw CMS over the exact signed bytes, binary mode
    der = extract_cms_der(out)
    openssl_verify_raw(pki, der, extract_signed_part(out, canonical=True))

    printed = cms_print(der)
    assert signer_info_digest(printed) == digest
    assert "eContent: <ABSENT>" in printed, "detached signature carries content"
    attrs = signed_attrs(printed)
    assert "1.2.840.113549.1.9.5" in attrs, "no signingTime signed attribute"
    assert "1.2.840.113549.1.9.15" in attrs, \
        "no SMIMECapabilities signed attribute"
    assert abs(signing_time_epoch(printed) - time.time()) < 600


@pytest.mark.parametrize("digest", sorted(DIGESTS))
def test_sign_opaque_openssl_verifies(smime, pki, digest):
    msg = msg_plain_lf()
    out = smime.sign(msg, digest=digest, opaque=True)

    ctype, params = content_type(out)
    assert ctype == "application/pkcs7-mime"
    assert params.get("smime-type") == "signed-data"
    assert_outer_headers(out, msg)

    content = openssl_verify(pki, out).stdout
    assert text_of(content) == text_of(msg)
    der = extract_cms_der(out)
    raw = openssl_verify_raw(pki, der).stdout
    assert text_of(raw) == text_of(msg)

    printed = cms_print(der)
    assert signer_info_digest(printed) == digest
    assert "eContent: <ABSENT>" not in printed
    attrs = signed_attrs(printed)
    assert "1.2.840.113549.1.9.5" in attrs
    assert "1.2.840.113549.1.9.15" in attrs


def test_sign_default_digest_is_sha256(smime, pki):
    out = smime.sign(msg_plain_lf())
    assert content_type(out)[1].get("micalg", "").lower() == "sha-256"
    assert signer_info_digest(cms_print(extract_cms_der(out))) == "sha256"


def test_sign_chain_from_signer_file(run, pki):
    """Certificates after the first in --signer become the chain."""
    msg = msg_plain_lf()
    out = check_ok(run(["sign", "--signer", pki / "alice-full.pem",
                        "--key", pki / "alice.key"], input=msg))
    content = openssl_verify(pki, out).stdout
    assert text_of(content) == text_of(msg)


def test_sign_header_placement(smime, pki):
    msg = msg_routing_headers()
    out = smime.sign(msg)
    head, _ = split_message(out)
    names = [n.lower() for n in header_names(out)]
    for n in ("from", "to", "cc", "subject", "date", "message-id",
              "reply-to", "received", "x-custom", "mime-version",
              "content-type"):
        assert n in names, f"outer header {n} missing"
    assert "bcc" not in names and "dkim-signature" not in names
    assert b"hidden@example.com" not in out, "Bcc leaked into the output"
    assert b"DKIM-Signature" not in out
    assert_outer_headers(out, msg)
    assert content_type(out)[0] == "multipart/signed"

    part = extract_signed_part(out)
    ptype, params = content_type(part)
    assert ptype == "text/plain"
    content = openssl_verify(pki, out).stdout
    assert text_of(content) == text_of(msg)


# --- special inputs through sign ------------------------------------------

@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sign_samples_openssl_verifies(smime, pki, name):
    msg = SAMPLES[name]()
    out = smime.sign(msg)
    assert_line_ends_like(out, msg)
    assert_outer_headers(out, msg)

    content = openssl_verify(pki, out).stdout
    signed = extract_signed_part(out, canonical=True)
    openssl_verify_raw(pki, extract_cms_der(out), signed)
    assert text_of(content) == text_of(msg)

    # what is signed must survive any 7-bit transport
    assert max(signed, default=0) < 0x80, "signed part has 8-bit bytes"
    for line in out.split(b"\n"):
        assert len(line.rstrip(b"\r")) <= 998, "output line over 998 octets"

    if name == "8bit":
        assert text_of(content) == EIGHTBIT_TEXT.rstrip("\n")
    if name == "long_line":
        assert LONG_LINE in text_of(content)
    if name == "attachment":
        assert attachment_of(content) == ATTACHMENT_BYTES
    if name == "nested":
        types = [t for t, _ in leaf_parts(content)]
        assert types == ["text/plain", "text/html", "text/csv"]
    if name == "utf8_subject":
        assert get_header(out, "Subject") == get_header(msg, "Subject")
    if name == "8bit_nested":
        leaves = leaf_parts(content)
        assert [t for t, _ in leaves] == ["text/plain", "text/html"]
        assert leaves[1][1].decode("utf-8").rstrip("\r\n") == \
            "<p>Grüße, 日本語</p>"


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sign_samples_opaque_openssl_verifies(smime, pki, name):
    msg = SAMPLES[name]()
    out = smime.sign(msg, opaque=True)
    assert_line_ends_like(out, msg)
    content = openssl_verify(pki, out).stdout
    assert text_of(content) == text_of(msg)
    if name == "attachment":
        assert attachment_of(content) == ATTACHMENT_BYTES


def test_8bit_reencoded_before_signing(smime, pki):
    msg = msg_8bit()
    out = smime.sign(msg)
    part = extract_signed_part(out)
    assert all(b < 0x80 for b in part), "8bit content was signed as is"
    cte = (get_header(part, "Content-Transfer-Encoding") or "7bit").lower()
    assert cte.strip() in ("quoted-printable", "base64")
    content = openssl_verify(pki, out).stdout
    assert text_of(content) == EIGHTBIT_TEXT.rstrip("\n")


# ---------------------------------------------------------------------------
# smimegate encrypts, openssl decrypts
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("cipher", [None] + sorted(CIPHERS))
def test_encrypt_openssl_decrypts(smime, pki, cipher):
    msg = msg_plain_lf()
    out = smime.encrypt(msg, ["bob"], cipher=cipher)
    name, stype = CIPHERS[cipher or "aes-256-cbc"]

    ctype, params = content_type(out)
    assert ctype == "application/pkcs7-mime"
    assert params.get("smime-type") == stype  # exact, as RFC 8551 spells it
    assert_outer_headers(out, msg)
    assert_line_ends_like(out, msg)

    printed = cms_print(extract_cms_der(out))
    assert content_cipher(printed) == name
    if stype == "authEnveloped-data":
        assert "d.authEnvelopedData:" in printed
    else:
        assert "d.envelopedData:" in printed
    ktri = printed.split("keyEncryptionAlgorithm:", 1)[1][:300]
    assert "rsaEncryption" in ktri  # PKCS#1 v1.5 key transport by default

    dec = openssl_decrypt(pki, out, "bob").stdout
    assert content_type(dec)[0] == "text/plain"
    assert text_of(dec) == text_of(msg)


def test_encrypt_oaep_openssl_decrypts(smime, pki):
    msg = msg_plain_lf()
    out = smime.encrypt(msg, ["bob"], oaep=True)
    printed = cms_print(extract_cms_der(out))
    ktri = printed.split("keyEncryptionAlgorithm:", 1)[1][:800]
    assert "rsaesOaep" in ktri
    assert "sha256" in ktri, "OAEP should use SHA-256"
    assert text_of(openssl_decrypt(pki, out, "bob").stdout) == text_of(msg)


@pytest.mark.parametrize("cipher", [None, "aes-128-gcm"])
def test_encrypt_ec_recipient_openssl_decrypts(smime, pki, cipher):
    msg = msg_plain_lf()
    out = smime.encrypt(msg, ["carol-ec"], cipher=cipher)
    printed = cms_print(extract_cms_der(out))
    assert "d.kari:" in printed
    dec = openssl_decrypt(pki, out, "carol-ec").stdout
    assert text_of(dec) == text_of(msg)


@pytest.mark.parametrize("cipher", [None, "aes-256-gcm"])
def test_encrypt_several_recipients_each_decrypts(smime, pki, cipher):
    msg = msg_plain_lf()
    who = ["alice", "bob", "dave", "carol-ec"]
    out = smime.encrypt(msg, who, cipher=cipher)
    printed = cms_print(extract_cms_der(out))
    assert printed.count("d.ktri:") == 3
    assert printed.count("d.kari:") == 1
    for w in who:
        dec = openssl_decrypt(pki, out, w).stdout
        assert text_of(dec) == text_of(msg), w


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_encrypt_samples_openssl_decrypts(smime, pki, name):
    msg = SAMPLES[name]()
    out = smime.encrypt(msg, ["bob"])
    assert_line_ends_like(out, msg)
    assert_outer_headers(out, msg)
    dec = openssl_decrypt(pki, out, "bob").stdout
    assert text_of(dec) == text_of(msg)
    if name == "attachment":
        assert attachment_of(dec) == ATTACHMENT_BYTES


def test_encrypt_header_placement(smime, pki):
    msg = msg_routing_headers()
    out = smime.encrypt(msg, ["bob"])
    names = [n.lower() for n in header_names(out)]
    for n in ("from", "to", "cc", "subject", "date", "message-id",
              "reply-to", "received", "mime-version", "content-type"):
        assert n in names, f"outer header {n} missing"
    assert "bcc" not in names and "dkim-signature" not in names
    dec = openssl_decrypt(pki, out, "bob").stdout
    assert b"hidden@example.com" not in dec, "Bcc inside the envelope"
    assert content_type(dec)[0] == "text/plain"
    assert text_of(dec) == text_of(msg)


def test_sign_then_encrypt_openssl_unwraps(smime, pki):
    msg = msg_plain_lf()
    signed = smime.sign(msg)
    env = smime.encrypt(signed, ["bob"])
    assert_outer_headers(env, msg)
    inner = openssl_decrypt(pki, env, "bob").stdout
    assert content_type(inner)[0] == "multipart/signed"
    content = openssl_verify(pki, inner).stdout
    assert text_of(content) == text_of(msg)


# ---------------------------------------------------------------------------
# openssl signs, smimegate verifies
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("detached", [True, False], ids=["detached", "opaque"])
@pytest.mark.parametrize("md", ["sha256", "sha384", "sha512"])
def test_openssl_signed_smimegate_verifies(run, pki, tmp_path, detached, md):
    msg = msg_plain_lf()
    signed = openssl_sign(pki, mime_entity(msg), md=md, detached=detached,
                          subject="openssl signed")
    outfile = tmp_path / "out.eml"
    proc = run(["verify", "--trust", pki / "trust.pem", "--out", outfile],
               input=signed)
    check_ok(proc, "smimegate verify")
    out = outfile.read_bytes()
    assert get_header(out, "From") == "alice@example.com"
    assert get_header(out, "Subject") == "openssl signed"
    assert content_type(out)[0] == "text/plain"
    assert b"pkcs7-signature" not in out and b"pkcs7-mime" not in out
    assert text_of(out) == text_of(msg)

    proc, res = verify_json(run, pki, signed)
    assert proc.returncode == 0
    assert res["status"] == "ok"
    assert res["kind"] == ("detached" if detached else "opaque")
    assert "CN=Alice" in res["signer_subject"]
    assert "Intermediate" in res["signer_issuer"]
    assert norm_serial(res["signer_serial"]) == serial_hex(pki, "alice")
    assert res["signer_emails"] == ["alice@example.com"]
    assert res["digest"] == md
    assert "rsa" in (res["signature_alg"] or "").lower()
    assert ISO_Z.match(res["signing_time"] or ""), res["signing_time"]
    t = calendar.timegm(time.strptime(res["signing_time"],
                                      "%Y-%m-%dT%H:%M:%SZ"))
    assert abs(t - time.time()) < 600
    assert res["signature_ok"] is True
    assert res["chain_ok"] is True
    assert res["chain_error"] is None
    assert res["from_address"] == "alice@example.com"
    assert res["from_match"] is True
    assert res["weak"] is False


def test_verify_json_stdout_only_json_with_out(run, pki, tmp_path):
    msg = msg_plain_lf()
    signed = openssl_sign(pki, mime_entity(msg))
    outfile = tmp_path / "out.eml"
    proc, res = verify_json(run, pki, signed, ["--out", outfile])
    assert proc.returncode == 0 and res["status"] == "ok"
    assert text_of(outfile.read_bytes()) == text_of(msg)


def test_openssl_sha1_signature_is_weak(run, pki):
    signed = openssl_sign(pki, mime_entity(msg_plain_lf()), md="sha1")
    proc, res = verify_json(run, pki, signed)
    assert proc.returncode == 0  # weak is reported, not a verdict
    assert res["digest"] == "sha1"
    assert res["weak"] is True
    assert res["weak_reason"]
    assert res["signature_ok"] is True


def test_from_mismatch_reported(run, pki):
    signed = openssl_sign(pki, mime_entity(msg_plain_lf()),
                          from_="Mallory <mallory@example.com>")
    proc, res = verify_json(run, pki, signed)
    assert proc.returncode == 0  # From mismatch is reported, not a verdict
    assert res["signature_ok"] is True and res["chain_ok"] is True
    assert res["from_address"] == "mallory@example.com"
    assert res["from_match"] is False


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_openssl_signed_samples_smimegate_verifies(run, pki, tmp_path, name):
    msg = SAMPLES[name]()
    signed = openssl_sign(pki, mime_entity(msg))
    outfile = tmp_path / "out.eml"
    check_ok(run(["verify", "--trust", pki / "trust.pem", "--out", outfile],
                 input=signed), "smimegate verify")
    out = outfile.read_bytes()
    assert text_of(out) == text_of(msg)
    if name == "attachment":
        assert attachment_of(out) == ATTACHMENT_BYTES


def test_openssl_signed_crlf_message_verifies(run, pki):
    """The whole openssl output converted to CRLF (as after SMTP)."""
    signed = openssl_sign(pki, mime_entity(msg_plain_lf()))
    crlf = re.sub(rb"(?<!\r)\n", b"\r\n", signed)
    check_ok(run(["verify", "--trust", pki / "trust.pem"], input=crlf))
    lf = signed.replace(b"\r\n", b"\n")
    check_ok(run(["verify", "--trust", pki / "trust.pem"], input=lf))


# ---------------------------------------------------------------------------
# openssl encrypts, smimegate decrypts
# ---------------------------------------------------------------------------

def _decrypt_and_check(run, pki, enc, msg, args):
    out = check_ok(run(["decrypt"] + args, input=enc), "smimegate decrypt")
    assert get_header(out, "From") == "alice@example.com"
    assert get_header(out, "Subject") == "encrypted by openssl"
    assert content_type(out)[0] == "text/plain"
    assert b"pkcs7-mime" not in out
    assert text_of(out) == text_of(msg)
    return out


@pytest.mark.parametrize("cipher", ["-aes256", "-aes128", "-aes-128-gcm",
                                    "-aes-256-gcm"])
def test_openssl_encrypted_smimegate_decrypts(run, pki, cipher):
    msg = msg_plain_lf()
    enc = openssl_encrypt(pki, mime_entity(msg), ["bob"], cipher=cipher)
    _decrypt_and_check(run, pki, enc, msg,
                       ["--cert", pki / "bob.pem", "--key", pki / "bob.key"])


@pytest.mark.parametrize("keyopts", [
    ["rsa_padding_mode:oaep"],
    ["rsa_padding_mode:oaep", "rsa_oaep_md:sha256"],
], ids=["oaep-sha1", "oaep-sha256"])
def test_openssl_oaep_smimegate_decrypts(run, pki, keyopts):
    msg = msg_plain_lf()
    enc = openssl_encrypt(pki, mime_entity(msg), ["bob"], keyopts=keyopts)
    assert "rsaesOaep" in cms_print(extract_cms_der(enc))
    _decrypt_and_check(run, pki, enc, msg,
                       ["--cert", pki / "bob.pem", "--key", pki / "bob.key"])


@pytest.mark.parametrize("keyopts", [[], ["ecdh_kdf_md:sha256"]],
                         ids=["kdf-sha1", "kdf-sha256"])
@pytest.mark.parametrize("cipher", ["-aes256", "-aes-128-gcm"])
def test_openssl_ec_recipient_smimegate_decrypts(run, pki, keyopts, cipher):
    msg = msg_plain_lf()
    enc = openssl_encrypt(pki, mime_entity(msg), ["carol-ec"], cipher=cipher,
                          keyopts=keyopts)
    _decrypt_and_check(run, pki, enc, msg, ["--cert", pki / "carol-ec.pem",
                                            "--key", pki / "carol-ec.key"])


@pytest.mark.parametrize("cipher", ["-aes256", "-aes-256-gcm"])
def test_openssl_several_recipients_each_decrypts(run, pki, cipher):
    msg = msg_plain_lf()
    who = ["alice", "bob", "carol-ec", "dave"]
    enc = openssl_encrypt(pki, mime_entity(msg), who, cipher=cipher)
    for w in who:
        _decrypt_and_check(run, pki, enc, msg, ["--cert", pki / f"{w}.pem",
                                                "--key", pki / f"{w}.key"])


@pytest.mark.parametrize("cert", ["bob.pem", "bob-renewed.pem"])
def test_openssl_keyid_renewed_cert_decrypts(run, pki, cert):
    """RecipientInfo by subject key identifier: the renewed certificate
    (same key, new serial) still opens the old mail."""
    msg = msg_plain_lf()
    enc = openssl_encrypt(pki, mime_entity(msg), ["bob"], keyid=True)
    assert "d.subjectKeyIdentifier" in cms_print(extract_cms_der(enc))
    _decrypt_and_check(run, pki, enc, msg,
                       ["--cert", pki / cert, "--key", pki / "bob.key"])


@pytest.mark.parametrize("p12", ["alice.p12", "alice-legacy.p12"])
def test_openssl_encrypted_decrypt_with_p12(run, pki, p12):
    msg = msg_plain_lf()
    enc = openssl_encrypt(pki, mime_entity(msg), ["alice"])
    _decrypt_and_check(run, pki, enc, msg, ["--p12", pki / p12,
                                            "--pass-file", pki / "pass.txt"])


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_openssl_encrypted_samples_smimegate_decrypts(run, pki, name):
    msg = SAMPLES[name]()
    enc = openssl_encrypt(pki, mime_entity(msg), ["bob"])
    out = check_ok(run(["decrypt", "--cert", pki / "bob.pem",
                        "--key", pki / "bob.key"], input=enc))
    assert text_of(out) == text_of(msg)
    if name == "attachment":
        assert attachment_of(out) == ATTACHMENT_BYTES


# ---------------------------------------------------------------------------
# round trips through smimegate alone (sanity for the samples)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_smimegate_roundtrip(smime, name):
    msg = SAMPLES[name]()
    out = smime.verify(smime.sign(msg))
    assert_outer_headers(out, msg)
    assert text_of(out) == text_of(msg)
    out = smime.decrypt(smime.encrypt(msg, ["bob"]), "bob")
    assert_outer_headers(out, msg)
    assert text_of(out) == text_of(msg)
    if name == "attachment":
        assert attachment_of(out) == ATTACHMENT_BYTES


# ---------------------------------------------------------------------------
# triple wrap
# ---------------------------------------------------------------------------

def test_triple_wrap_smimegate_openssl_unwraps(smime, pki):
    msg = msg_plain_lf()
    inner = smime.sign(msg)
    env = smime.encrypt(inner, ["bob"])
    outer = smime.sign(env)
    assert_outer_headers(outer, msg)
    assert content_type(outer)[0] == "multipart/signed"

    layer1 = openssl_verify(pki, outer).stdout
    ctype, params = content_type(layer1)
    assert ctype == "application/pkcs7-mime"
    assert params.get("smime-type") == "enveloped-data"
    layer2 = openssl_decrypt(pki, layer1, "bob").stdout
    assert content_type(layer2)[0] == "multipart/signed"
    layer3 = openssl_verify(pki, layer2).stdout
    assert text_of(layer3) == text_of(msg)


def test_triple_wrap_openssl_smimegate_unwraps(smime, pki):
    msg = msg_plain_lf()
    inner = openssl_sign(pki, mime_entity(msg), from_=None, to=None,
                         subject=None)
    env = openssl_encrypt(pki, inner, ["bob"], from_=None, to=None,
                          subject=None)
    outer = openssl_sign(pki, env, subject="triple")

    layer1 = smime.verify(outer)
    assert get_header(layer1, "Subject") == "triple"
    assert content_type(layer1)[0] == "application/pkcs7-mime"
    layer2 = smime.decrypt(layer1, "bob")
    assert get_header(layer2, "Subject") == "triple"
    assert content_type(layer2)[0] == "multipart/signed"
    layer3 = smime.verify(layer2)
    assert get_header(layer3, "Subject") == "triple"
    assert content_type(layer3)[0] == "text/plain"
    assert text_of(layer3) == text_of(msg)


# ---------------------------------------------------------------------------
# --in / --out files
# ---------------------------------------------------------------------------

def test_file_io(run, pki, tmp_path):
    msg = msg_plain_lf()
    src = tmp_path / "msg.eml"
    src.write_bytes(msg)
    p = pki
    steps = [
        (["sign", "--signer", p / "alice.pem", "--key", p / "alice.key",
          "--certfile", p / "inter.pem"], "signed.eml"),
        (["encrypt", "--recipient", p / "bob.pem"], "enc.eml"),
        (["decrypt", "--cert", p / "bob.pem", "--key", p / "bob.key"],
         "dec.eml"),
        (["verify", "--trust", p / "trust.pem"], "plain.eml"),
    ]
    cur = src
    for args, name in steps:
        dst = tmp_path / name
        proc = run(args + ["--in", cur, "--out", dst])
        check_ok(proc, args[0])
        assert proc.stdout == b"", f"{args[0]} --out also wrote to stdout"
        cur = dst
    # the signed file is also good for openssl
    content = openssl_verify(pki, (tmp_path / "signed.eml").read_bytes())
    assert text_of(content.stdout) == text_of(msg)
    out = cur.read_bytes()
    assert_outer_headers(out, msg)
    assert text_of(out) == text_of(msg)


# ---------------------------------------------------------------------------
# other algorithms and forms
# ---------------------------------------------------------------------------

def test_openssl_rsa_pss_signature_verifies(run, pki):
    msg = msg_plain_lf()
    signed = openssl_sign(pki, mime_entity(msg),
                          extra=["-keyopt", "rsa_padding_mode:pss"])
    assert "rsassaPss" in cms_print(extract_cms_der(signed))
    proc, res = verify_json(run, pki, signed)
    assert proc.returncode == 0, proc.stderr
    assert res["status"] == "ok" and res["signature_ok"] is True
    assert "pss" in res["signature_alg"].lower()


@pytest.mark.parametrize("detached", [True, False], ids=["detached", "opaque"])
def test_openssl_ecdsa_signature_verifies(run, pki, tmp_path, detached):
    msg = msg_plain_lf()
    signed = openssl_sign(pki, mime_entity(msg), signer="carol-ec",
                          detached=detached, from_="carol@example.com")
    proc, res = verify_json(run, pki, signed)
    assert proc.returncode == 0, proc.stderr
    assert res["status"] == "ok"
    assert res["signer_emails"] == ["carol@example.com"]
    assert res["from_match"] is True
    out = tmp_path / "out.eml"
    check_ok(run(["verify", "--trust", pki / "trust.pem", "--out", out],
                 input=signed))
    assert text_of(out.read_bytes()) == text_of(msg)


@pytest.mark.parametrize("opaque", [False, True], ids=["detached", "opaque"])
def test_sign_ecdsa_openssl_verifies(smime, pki, opaque):
    msg = msg_plain_lf()
    out = smime.sign(msg, signer="carol-ec", opaque=opaque)
    content = openssl_verify(pki, out).stdout
    assert text_of(content) == text_of(msg)
    printed = cms_print(extract_cms_der(out))
    assert "ecdsa" in printed.split("signatureAlgorithm:")[-1][:200].lower()


def test_openssl_ber_streamed_opaque_verifies(run, pki, tmp_path):
    """-stream makes openssl write indefinite-length BER."""
    msg = msg_plain_lf()
    signed = openssl_sign(pki, mime_entity(msg), detached=False,
                          extra=["-stream"])
    der = extract_cms_der(signed)
    assert der[1] == 0x80, "expected indefinite-length BER"
    out = tmp_path / "out.eml"
    check_ok(run(["verify", "--trust", pki / "trust.pem", "--out", out],
                 input=signed))
    assert text_of(out.read_bytes()) == text_of(msg)


def test_openssl_ber_streamed_enveloped_decrypts(run, pki):
    msg = msg_plain_lf()
    ent = mime_entity(msg)
    enc = openssl("cms", "-encrypt", "-aes256", "-stream", "-recip",
                  pki / "bob.pem", "-from", "alice@example.com",
                  "-subject", "encrypted by openssl", input=ent).stdout
    assert extract_cms_der(enc)[1] == 0x80, "expected indefinite-length BER"
    _decrypt_and_check(run, pki, enc, msg,
                       ["--cert", pki / "bob.pem", "--key", pki / "bob.key"])


@pytest.fixture(scope="module")
def big():
    return msg_big(2 << 20)


def test_big_message_sign_encrypt_openssl(smime, pki, big):
    """A 2 MB attachment through sign and encrypt; openssl unwraps."""
    signed = smime.sign(big)
    content = openssl_verify(pki, signed).stdout
    assert attachment_of(content) == big_attachment_bytes(2 << 20)
    env = smime.encrypt(signed, ["bob"], cipher="aes-256-gcm")
    inner = openssl_decrypt(pki, env, "bob").stdout
    content = openssl_verify(pki, inner).stdout
    assert attachment_of(content) == big_attachment_bytes(2 << 20)


def test_big_message_openssl_to_smimegate(smime, pki, big):
    ent = mime_entity(big)
    signed = openssl_sign(pki, ent, detached=False)
    env = openssl_encrypt(pki, signed, ["bob"], cipher="-aes-128-gcm")
    out = smime.verify(smime.decrypt(env, "bob"))
    assert attachment_of(out) == big_attachment_bytes(2 << 20)
