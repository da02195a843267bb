"""Hostile and broken input: the right exit code, one clear line on stderr,
never a crash (the test build runs under ASan/UBSan; run_cmd checks for
sanitizer reports and signals on every call).

exit 1: security failure.  exit 2: usage error or malformed input.
Inputs for verify/decrypt are made with `openssl cms` where possible, so
that these tests do not depend on smimegate's own sign/encrypt.
"""

import json
import random
import re

import pytest

from smime_util import (assert_clean, BASE_HEADERS, PLAIN_TEXT, asn1_items,
                        assert_reason, content_type, make_message,
                        extract_cms_der, mime_entity,
                        msg_deep_nested, msg_long_header, msg_plain_lf,
                        multipart_parts, openssl, openssl_encrypt,
                        openssl_sign, replace_cms, cms_b64_span,
                        split_message)

T = 60  # seconds, for every smimegate call


def expect(proc, code):
    assert proc.returncode == code, (
        f"exit {proc.returncode}, expected {code}; stderr: "
        f"{proc.stderr.decode('utf-8', 'replace')[:1000]}")
    return assert_reason(proc)


def verify(run, pki, msg, extra=()):
    return run(["verify", "--trust", pki / "trust.pem"] + list(extra),
               input=msg, timeout=T)


def verify_json(run, pki, msg):
    proc = run(["verify", "--trust", pki / "trust.pem", "--json"],
               input=msg, timeout=T)
    try:
        res = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"verify --json stdout is not JSON (exit "
                             f"{proc.returncode}): {proc.stdout[:300]!r}")
    return proc, res


def decrypt(run, pki, msg, who="bob", cert=None):
    return run(["decrypt", "--cert", cert or pki / f"{who}.pem",
                "--key", pki / f"{who}.key"], input=msg, timeout=T)


def sign_args(pki, who="alice"):
    return ["sign", "--signer", pki / f"{who}.pem", "--key",
            pki / f"{who}.key", "--certfile", pki / "inter.pem"]


@pytest.fixture
def plain():
    return msg_plain_lf()


@pytest.fixture
def ossl_detached(pki, plain):
    return openssl_sign(pki, mime_entity(plain))


@pytest.fixture
def ossl_opaque(pki, plain):
    return openssl_sign(pki, mime_entity(plain), detached=False)


@pytest.fixture
def ossl_enveloped(pki, plain):
    return openssl_encrypt(pki, mime_entity(plain), ["bob"])


def _sign_smimegate(run, pki, msg, opaque=False):
    args = sign_args(pki) + (["--opaque"] if opaque else [])
    proc = run(args, input=msg, timeout=T)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _change_last_alnum(data, start, end):
    """Change the last letter/digit in data[start:end] to another one."""
    for i in range(end - 1, start - 1, -1):
        c = data[i:i + 1]
        if c.isalnum():
            new = b"B" if c != b"B" else b"C"
            return data[:i] + new + data[i + 1:]
    raise AssertionError("nothing to tamper with")


# ===========================================================================
# exit 1: security failures
# ===========================================================================

@pytest.mark.parametrize("producer", ["openssl", "smimegate"])
def test_tampered_body(run, pki, plain, producer):
    if producer == "openssl":
        signed = openssl_sign(pki, mime_entity(plain))
    else:
        signed = _sign_smimegate(run, pki, plain)
    start, end = multipart_parts(signed)[0]
    bad = _change_last_alnum(signed, start, end)
    assert bad != signed
    expect(verify(run, pki, bad), 1)
    proc, res = verify_json(run, pki, bad)
    assert proc.returncode == 1
    assert res["status"] == "bad-signature"
    assert res["signature_ok"] is False


def test_tampered_opaque_content(run, pki, ossl_opaque):
    der = extract_cms_der(ossl_opaque)
    i = der.find(b"this is a plain")
    assert i > 0
    bad_der = der[:i] + b"THIS" + der[i + 4:]
    bad = replace_cms(ossl_opaque, bad_der)
    expect(verify(run, pki, bad), 1)
    proc, res = verify_json(run, pki, bad)
    assert res["status"] == "bad-signature"


@pytest.mark.parametrize("producer", ["openssl", "smimegate"])
@pytest.mark.parametrize("opaque", [False, True], ids=["detached", "opaque"])
def test_tampered_signature(run, pki, plain, producer, opaque):
    if producer == "openssl":
        signed = openssl_sign(pki, mime_entity(plain), detached=not opaque)
    else:
        signed = _sign_smimegate(run, pki, plain, opaque=opaque)
    der = extract_cms_der(signed)
    pos = len(der) - 40
    # make sure pos is inside the signature value (the last OCTET STRING)
    octets = [it for it in asn1_items(der) if it.tag == "OCTET STRING"
              and it.length and it.length >= 128]
    sig = octets[-1]
    assert sig.offset + sig.hl <= pos < sig.offset + sig.hl + sig.length, \
        "offset -40 is not inside the signature value"
    bad_der = bytearray(der)
    bad_der[pos] ^= 0x5A
    bad = replace_cms(signed, bytes(bad_der))
    expect(verify(run, pki, bad), 1)
    proc, res = verify_json(run, pki, bad)
    assert proc.returncode == 1
    assert res["status"] == "bad-signature"
    assert res["signature_ok"] is False


def test_opaque_signature_as_detached_over_other_content(run, pki, plain):
    """The pkcs7-signature part carries an opaque SignedData over content A
    while the first part holds different content B: must not verify."""
    a = mime_entity(plain)
    b = a.replace(b"Hello Bob", b"Hello Eve")
    assert a != b
    opaque_der = extract_cms_der(openssl_sign(pki, a, detached=False))
    forged = replace_cms(openssl_sign(pki, b), opaque_der)
    proc = verify(run, pki, forged)
    assert proc.returncode in (1, 2), \
        f"forged message accepted (exit {proc.returncode})"
    assert_reason(proc)


def test_expired_signer(run, pki, plain):
    signed = openssl_sign(pki, mime_entity(plain), signer="expired",
                          from_="expired@example.com")
    expect(verify(run, pki, signed), 1)
    proc, res = verify_json(run, pki, signed)
    assert proc.returncode == 1
    assert res["status"] == "expired"
    assert res["chain_ok"] is False
    assert res["signature_ok"] is True


def test_untrusted_ca(run, pki, plain):
    signed = openssl_sign(pki, mime_entity(plain), signer="rogue",
                          certfile="rogue-root.pem")
    expect(verify(run, pki, signed), 1)
    proc, res = verify_json(run, pki, signed)
    assert proc.returncode == 1
    assert res["status"] == "untrusted"
    assert res["chain_ok"] is False
    assert res["chain_error"]


def test_untrusted_ca_without_root_in_message(run, pki, plain):
    signed = openssl_sign(pki, mime_entity(plain), signer="rogue",
                          certfile=None)
    expect(verify(run, pki, signed), 1)


def test_missing_email_protection(run, pki, plain):
    signed = openssl_sign(pki, mime_entity(plain), signer="noeku",
                          from_="noeku@example.com")
    expect(verify(run, pki, signed), 1)
    proc, res = verify_json(run, pki, signed)
    assert proc.returncode == 1
    assert res["status"] == "key-usage"


def test_verify_at_before_validity(run, pki, ossl_detached):
    """--at moves the clock: before the CA existed nothing is valid."""
    expect(verify(run, pki, ossl_detached, ["--at", "2019-06-01T00:00:00Z"]),
           1)
    # and inside every certificate's validity it verifies
    proc = verify(run, pki, ossl_detached, ["--at", "2024-06-01T00:00:00Z"])
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("how", ["openssl", "openssl-keyid", "smimegate"])
def test_not_our_recipient(run, pki, plain, how):
    if how == "smimegate":
        proc = run(["encrypt", "--recipient", pki / "bob.pem"], input=plain,
                   timeout=T)
        assert proc.returncode == 0, proc.stderr
        enc = proc.stdout
    else:
        enc = openssl_encrypt(pki, mime_entity(plain), ["bob"],
                              keyid=(how == "openssl-keyid"))
    expect(decrypt(run, pki, enc, "dave"), 1)


def test_not_our_recipient_p12(run, pki, ossl_enveloped):
    proc = run(["decrypt", "--p12", pki / "alice.p12", "--pass-file",
                pki / "pass.txt"], input=ossl_enveloped, timeout=T)
    expect(proc, 1)


def test_decrypt_key_not_matching_cert(run, pki, ossl_enveloped):
    # bob's certificate (so the RecipientInfo matches) with dave's key
    expect(decrypt(run, pki, ossl_enveloped, "dave", cert=pki / "bob.pem"), 1)


def test_sign_key_not_matching_cert(run, pki, plain):
    proc = run(["sign", "--signer", pki / "alice.pem", "--key",
                pki / "bob.key"], input=plain, timeout=T)
    expect(proc, 1)


def test_sign_with_expired_cert(run, pki, plain):
    expect(run(sign_args(pki, "expired"), input=plain, timeout=T), 1)


def test_sign_without_email_protection(run, pki, plain):
    expect(run(sign_args(pki, "noeku"), input=plain, timeout=T), 1)


def test_encrypt_to_cert_without_key_encipherment(run, pki, plain):
    proc = run(["encrypt", "--recipient", pki / "nokeyenc.pem"], input=plain,
               timeout=T)
    expect(proc, 1)


def test_encrypt_to_expired_cert(run, pki, plain):
    proc = run(["encrypt", "--recipient", pki / "expired.pem"], input=plain,
               timeout=T)
    expect(proc, 1)


def test_encrypt_one_bad_recipient_fails_all(run, pki, plain):
    proc = run(["encrypt", "--recipient", pki / "bob.pem", "--recipient",
                pki / "nokeyenc.pem"], input=plain, timeout=T)
    expect(proc, 1)
    assert proc.stdout == b""


def _gcm_message(run, pki, plain, producer):
    # big enough that the ciphertext is the longest primitive DER item
    plain = make_message(BASE_HEADERS + [
        ("MIME-Version", "1.0"), ("Content-Type", "text/plain")],
        PLAIN_TEXT * 20)
    if producer == "openssl":
        return openssl_encrypt(pki, mime_entity(plain), ["bob"],
                               cipher="-aes-256-gcm")
    proc = run(["encrypt", "--recipient", pki / "bob.pem", "--cipher",
                "aes-256-gcm"], input=plain, timeout=T)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("producer", ["openssl", "smimegate"])
def test_gcm_tampered_tag(run, pki, plain, producer):
    enc = _gcm_message(run, pki, plain, producer)
    der = extract_cms_der(enc)
    mac = [it for it in asn1_items(der)
           if it.tag == "OCTET STRING" and it.length == 16][-1]
    bad = bytearray(der)
    bad[mac.offset + mac.hl + 5] ^= 0x01
    expect(decrypt(run, pki, replace_cms(enc, bytes(bad))), 1)


@pytest.mark.parametrize("producer", ["openssl", "smimegate"])
def test_gcm_tampered_ciphertext(run, pki, plain, producer):
    enc = _gcm_message(run, pki, plain, producer)
    der = extract_cms_der(enc)
    # the encrypted content: the longest primitive item (encryptedKey is
    # 256 bytes; the message is longer than that)
    body = max((it for it in asn1_items(der) if not it.cons and it.length),
               key=lambda it: it.length)
    assert body.length > 256
    bad = bytearray(der)
    bad[body.offset + body.hl + body.length // 2] ^= 0x01
    expect(decrypt(run, pki, replace_cms(enc, bytes(bad))), 1)


# ===========================================================================
# exit 2: malformed input, usage errors
# ===========================================================================

def _truncate_b64(msg):
    start, end = cms_b64_span(msg)
    half = msg[:start + (end - start) // 2]
    return half + msg[end:]


def test_truncated_base64_opaque(run, pki, ossl_opaque):
    expect(verify(run, pki, _truncate_b64(ossl_opaque)), 2)


def test_truncated_base64_detached(run, pki, ossl_detached):
    expect(verify(run, pki, _truncate_b64(ossl_detached)), 2)


def test_truncated_base64_enveloped(run, pki, ossl_enveloped):
    expect(decrypt(run, pki, _truncate_b64(ossl_enveloped)), 2)


def test_truncated_message_cut_in_half(run, pki, ossl_opaque, ossl_enveloped):
    expect(verify(run, pki, ossl_opaque[:len(ossl_opaque) // 2]), 2)
    expect(decrypt(run, pki, ossl_enveloped[:len(ossl_enveloped) // 2]), 2)


def test_broken_boundary(run, pki, ossl_detached):
    head, body = split_message(ossl_detached)
    new_head, n = re.subn(rb'boundary="?[^";\r\n]+"?',
                          b'boundary="never-appears-0123456789"', head,
                          count=1)
    assert n == 1
    bad = ossl_detached.replace(head, new_head, 1)
    assert content_type(bad)[1]["boundary"] == "never-appears-0123456789"
    expect(verify(run, pki, bad), 2)


def test_multipart_signed_without_signature_part(run, pki, ossl_detached):
    (s0, e0), (s1, e1) = multipart_parts(ossl_detached)[:2]
    # keep the first part, drop the second, keep the closing delimiter
    bad = ossl_detached[:e0] + ossl_detached[e1:]
    expect(verify(run, pki, bad), 2)


def _garbage(n=1500, seed=42):
    return random.Random(seed).randbytes(n)


def test_garbage_cms_detached(run, pki, ossl_detached):
    expect(verify(run, pki, replace_cms(ossl_detached, _garbage())), 2)


def test_garbage_cms_opaque(run, pki, ossl_opaque):
    expect(verify(run, pki, replace_cms(ossl_opaque, _garbage())), 2)


def test_garbage_cms_enveloped(run, pki, ossl_enveloped):
    expect(decrypt(run, pki, replace_cms(ossl_enveloped, _garbage())), 2)


def test_invalid_base64_characters(run, pki, ossl_detached, ossl_enveloped):
    for msg, check in ((ossl_detached, verify), (ossl_enveloped, decrypt)):
        start, end = cms_b64_span(msg)
        mid = start + (end - start) // 2
        bad = msg[:mid] + b"!!*#%~" + msg[mid:]
        expect(check(run, pki, bad), 2)


def test_multipart_signed_other_protocol(run, pki, ossl_detached):
    bad = ossl_detached.replace(b'protocol="application/pkcs7-signature"',
                                b'protocol="application/pgp-signature"', 1)
    assert bad != ossl_detached
    expect(verify(run, pki, bad), 2)


def test_huge_declared_der_length(run, pki, ossl_detached, ossl_opaque,
                                  ossl_enveloped):
    der = b"\x30\x84\x7f\xff\xff\xff\x06\x09\x2a\x86\x48\x86\xf7\x0d" \
          b"\x01\x07\x02" + _garbage(200)
    expect(verify(run, pki, replace_cms(ossl_detached, der)), 2)
    expect(verify(run, pki, replace_cms(ossl_opaque, der)), 2)
    expect(decrypt(run, pki, replace_cms(ossl_enveloped, der)), 2)


def test_valid_der_not_cms(run, pki, ossl_detached, ossl_enveloped):
    cert_der = openssl("x509", "-in", pki / "alice.pem", "-outform",
                       "DER").stdout
    expect(verify(run, pki, replace_cms(ossl_detached, cert_der)), 2)
    expect(decrypt(run, pki, replace_cms(ossl_enveloped, cert_der)), 2)


def _with_long_header(msg, size=1 << 20):
    head, body = split_message(msg)
    nl = b"\r\n" if head.endswith(b"\r\n") else b"\n"
    return head + b"X-Long: " + b"y" * size + nl + nl + body


def test_long_header_line_sign(run, pki):
    expect(run(sign_args(pki), input=msg_long_header(), timeout=T), 2)


def test_long_header_line_encrypt(run, pki):
    proc = run(["encrypt", "--recipient", pki / "bob.pem"],
               input=msg_long_header(), timeout=T)
    expect(proc, 2)


def test_long_header_line_verify(run, pki, ossl_detached):
    expect(verify(run, pki, _with_long_header(ossl_detached)), 2)


def test_long_header_line_decrypt(run, pki, ossl_enveloped):
    expect(decrypt(run, pki, _with_long_header(ossl_enveloped)), 2)


@pytest.fixture(scope="module")
def deep():
    return msg_deep_nested(10000)


def test_deep_nesting_sign(run, pki, deep):
    expect(run(sign_args(pki), input=deep, timeout=T), 2)


def test_deep_nesting_verify_unsigned(run, pki, deep):
    expect(verify(run, pki, deep), 2)


def test_deep_nesting_verify_signed(run, pki, deep):
    """A valid signature over 10,000-deep content is a valid signature:
    verify reports the verdict on the signature and does not walk the
    content's structure (the depth limit applies where content is parsed:
    sign and encrypt here, the gateway's policy step later).  It must not
    crash or hang, and the content must come out unchanged."""
    entity = mime_entity(deep)
    signed = openssl_sign(pki, entity)
    proc = verify(run, pki, signed)
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
    assert_clean(proc)
    out = proc.stdout.replace(b"\r\n", b"\n")
    # The whole nested body, every boundary down to the last, survives.
    assert out.count(b"--b9999") >= 1 and out.count(b"--b0--") == 1
    assert entity.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1] in out


def test_not_smime_verify(run, pki, plain):
    expect(verify(run, pki, plain), 2)


def test_not_smime_decrypt(run, pki, plain):
    expect(decrypt(run, pki, plain), 2)


def test_empty_input(run, pki):
    expect(verify(run, pki, b""), 2)
    expect(run(sign_args(pki), input=b"", timeout=T), 2)


USAGE_CASES = {
    "no-command": [],
    "unknown-command": ["frobnicate"],
    "sign-no-key": ["sign", "--signer", "{p}/alice.pem"],
    "sign-no-signer": ["sign", "--key", "{p}/alice.key"],
    "sign-bad-digest": ["sign", "--signer", "{p}/alice.pem", "--key",
                        "{p}/alice.key", "--digest", "md5"],
    "sign-unknown-option": ["sign", "--signer", "{p}/alice.pem", "--key",
                            "{p}/alice.key", "--no-such-option"],
    "encrypt-no-recipient": ["encrypt"],
    "encrypt-bad-cipher": ["encrypt", "--recipient", "{p}/bob.pem",
                           "--cipher", "des-cbc"],
    "verify-no-trust": ["verify"],
    "verify-bad-at": ["verify", "--trust", "{p}/trust.pem", "--at",
                      "yesterday"],
    "decrypt-no-key": ["decrypt"],
    "decrypt-cert-only": ["decrypt", "--cert", "{p}/bob.pem"],
    "decrypt-key-only": ["decrypt", "--key", "{p}/bob.key"],
    "flag-without-value": ["verify", "--trust"],
}


@pytest.mark.parametrize("case", sorted(USAGE_CASES))
def test_usage_error(run, pki, plain, case):
    args = [a.format(p=pki) for a in USAGE_CASES[case]]
    expect(run(args, input=plain, timeout=T), 2)


def test_misplaced_option_is_named(run, pki, plain):
    # the option, not its value, even when it takes one
    p = run(["sign", "--signer", pki / "alice.pem", "--key",
             pki / "alice.key", "--trust", "somefile"], input=plain,
            timeout=T)
    assert p.returncode == 2
    assert b'option "--trust" does not apply' in p.stderr, p.stderr


NOFILE = "/nonexistent/dir/file"
NOFILE_CASES = {
    "sign-in": ["sign", "--signer", "{p}/alice.pem", "--key",
                "{p}/alice.key", "--in", NOFILE],
    "sign-signer": ["sign", "--signer", NOFILE, "--key", "{p}/alice.key"],
    "sign-key": ["sign", "--signer", "{p}/alice.pem", "--key", NOFILE],
    "sign-certfile": ["sign", "--signer", "{p}/alice.pem", "--key",
                      "{p}/alice.key", "--certfile", NOFILE],
    "encrypt-recipient": ["encrypt", "--recipient", NOFILE],
    "encrypt-in": ["encrypt", "--recipient", "{p}/bob.pem", "--in", NOFILE],
    "verify-trust": ["verify", "--trust", NOFILE],
    "verify-in": ["verify", "--trust", "{p}/trust.pem", "--in", NOFILE],
    "decrypt-cert": ["decrypt", "--cert", NOFILE, "--key", "{p}/bob.key"],
    "decrypt-p12": ["decrypt", "--p12", NOFILE],
    "decrypt-pass-file": ["decrypt", "--p12", "{p}/alice.p12",
                          "--pass-file", NOFILE],
    "verify-out-dir": ["verify", "--trust", "{p}/trust.pem", "--out",
                       NOFILE],
}


@pytest.mark.parametrize("case", sorted(NOFILE_CASES))
def test_nonexistent_file(run, pki, plain, ossl_detached, case):
    args = [a.format(p=pki) for a in NOFILE_CASES[case]]
    stdin = ossl_detached if case.startswith("verify") else plain
    expect(run(args, input=stdin, timeout=T), 2)


def test_not_a_certificate_file(run, pki, plain):
    # a key where a certificate belongs, a text file where a key belongs
    expect(run(["encrypt", "--recipient", pki / "bob.key"], input=plain,
               timeout=T), 2)
    expect(run(["sign", "--signer", pki / "alice.pem", "--key",
                pki / "pass.txt"], input=plain, timeout=T), 2)
