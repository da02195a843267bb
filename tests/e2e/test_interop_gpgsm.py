"""Interop with GnuPG's gpgsm.

Both directions:
- smimegate signs / encrypts, gpgsm --verify / --decrypt (the key comes
  from Alice's legacy 3DES PKCS#12: gpgsm cannot read OpenSSL 3's default);
- gpgsm signs / encrypts (BER, indefinite lengths, content in 4096-byte
  chunks), we wrap its CMS into MIME, smimegate verifies / decrypts.

Every test gets a throw-away GNUPGHOME whose trustlist.txt names only the
test root; gpg-agent is killed at teardown.
"""

import base64
import subprocess
from pathlib import Path

import pytest

from gpgsm_util import GpgsmHome, fingerprint
from nss_util import (OID, assert_same_content, cms_content_type,
                      decoded_subject, inner_entity, outer_headers,
                      run_smimegate, sg_ok, to_crlf, wrap_detached,
                      wrap_pkcs7_mime)
from smime_util import (ATTACHMENT_BYTES, BASE_HEADERS, PLAIN_TEXT,
                        UTF8_SUBJECT_DECODED, asn1_items, attachment_of,
                        content_type, extract_cms_der, extract_signed_part,
                        get_header, make_message, msg_8bit, msg_attachment,
                        msg_crlf, msg_utf8_subject)


def passphrase(pki) -> str:
    return (pki / "pass.txt").read_text().strip("\r\n")


@pytest.fixture
def gpg_verifier(pki):
    """gpgsm that trusts only the test root and knows no other certificate."""
    g = GpgsmHome(trusted_roots=[pki / "trust.pem"])
    try:
        g.import_certs(pki / "trust.pem")
        yield g
    finally:
        g.close()


def remake_alice_legacy(pki, d: Path) -> Path:
    """Alice's legacy PKCS#12 written again as tests/pki/mkpki.sh does, with
    new salts, into D (the shared test PKI is left alone)."""
    out = d / "alice-legacy.p12"
    subprocess.run(["openssl", "pkcs12", "-export", "-legacy",
                    "-in", pki / "alice.pem", "-inkey", pki / "alice.key",
                    "-certfile", pki / "inter.pem", "-name", "alice",
                    "-passout", f"file:{pki / 'pass.txt'}", "-out", out],
                   check=True, timeout=60)
    return out


@pytest.fixture(scope="module")
def gpg_alice_template(pki):
    """A GNUPGHOME with Alice's key (legacy PKCS#12) and Bob's and Dave's
    certificates (without them gpgsm may exit 2 after a multi-recipient
    decryption).  Only copied, never used directly."""
    g = GpgsmHome(trusted_roots=[pki / "trust.pem"])
    try:
        g.import_certs(pki / "trust.pem", pki / "bob.pem", pki / "dave.pem")
        g.import_p12(pki / "alice-legacy.p12", passphrase(pki),
                     remake=lambda: remake_alice_legacy(pki, g.home))
        g.stop_agent()
        yield g
    finally:
        g.close()


@pytest.fixture
def gpg_alice(gpg_alice_template):
    """A throw-away copy of the template home, for one test."""
    g = GpgsmHome(template=gpg_alice_template)
    try:
        yield g
    finally:
        g.close()


def sign_args(pki, *extra):
    return ["sign", "--signer", pki / "alice.pem", "--key", pki / "alice.key",
            "--certfile", pki / "alice-chain.pem", *extra]


def verify_json(smimegate, pki, msg):
    r = run_smimegate(smimegate, ["verify", "--trust", pki / "trust.pem",
                                  "--json"], msg)
    try:
        info = r.json()
    except ValueError:
        raise AssertionError(f"verify --json printed no JSON (exit {r.rc}): "
                             f"{r.stdout[:300]!r} {r.stderr}")
    return r, info


def big_attachment_msg(size: int = 20000) -> bytes:
    """multipart/mixed, CRLF, UTF-8 subject, a SIZE-byte binary attachment:
    big enough for several 4096-byte gpgsm chunks."""
    data = bytes((i * 131 + 7) % 256 for i in range(size))
    b64 = base64.encodebytes(data).decode()
    subj = get_header(msg_utf8_subject(), "Subject")
    hdrs = [(n, subj if n == "Subject" else v) for n, v in BASE_HEADERS]
    hdrs += [("MIME-Version", "1.0"),
             ("Content-Type", 'multipart/mixed; boundary="=_big_1"')]
    body = ("--=_big_1\n"
            "Content-Type: text/plain; charset=us-ascii\n"
            "Content-Transfer-Encoding: 7bit\n\n" + PLAIN_TEXT +
            "\n--=_big_1\n"
            'Content-Type: application/octet-stream; name="big.bin"\n'
            "Content-Transfer-Encoding: base64\n"
            'Content-Disposition: attachment; filename="big.bin"\n\n' + b64 +
            "\n--=_big_1--\n")
    return make_message(hdrs, body, crlf=True), data


def chunk_count(der: bytes, size: int = 4096) -> int:
    return sum(1 for it in asn1_items(der)
               if it.tag == "OCTET STRING" and not it.cons and it.length == size)


def decrypt_failure_hint(res) -> str:
    if "error getting info" in res.stderr:
        return (" (gpgsm 2.2 cannot read a RecipientInfo identified by "
                "subjectKeyIdentifier: use issuerAndSerialNumber)")
    return ""


# ---------------------------------------------------------------------------
# smimegate -> gpgsm


@pytest.mark.parametrize("digest", ["sha256", "sha384", "sha512"])
def test_gpgsm_verifies_smimegate_detached(smimegate, pki, gpg_verifier, digest):
    msg = msg_crlf()
    out = sg_ok(smimegate, sign_args(pki, "--digest", digest), msg)
    assert content_type(out)[1].get("micalg") == "sha-" + digest[3:]
    signed = extract_signed_part(out)
    sig = extract_cms_der(out)
    assert OID[digest] in sig

    res = gpg_verifier.verify(sig, signed)
    assert gpg_verifier.good_signature(res, fingerprint(pki / "alice.pem")), res

    # Negative control: one changed byte gives BADSIG.
    i = len(signed.rstrip(b"\r\n")) - 1
    bad = gpg_verifier.verify(sig, signed[:i] + bytes([signed[i] ^ 1]) + signed[i + 1:])
    assert bad.rc != 0 and bad.has("BADSIG") and not bad.has("GOODSIG"), bad


def test_gpgsm_verifies_smimegate_opaque(smimegate, pki, gpg_verifier):
    msg = to_crlf(msg_attachment())
    out = sg_ok(smimegate, sign_args(pki, "--opaque"), msg)
    assert content_type(out)[1].get("smime-type") == "signed-data"
    der = extract_cms_der(out)
    assert cms_content_type(der) == "signedData"

    res = gpg_verifier.verify(der)
    assert gpg_verifier.good_signature(res, fingerprint(pki / "alice.pem")), res
    assert_same_content(res.output, msg)
    assert attachment_of(res.output) == ATTACHMENT_BYTES


@pytest.mark.parametrize("cipher,recipients", [
    ("aes-256-cbc", ["alice"]),
    ("aes-128-cbc", ["bob", "dave", "alice"]),
    (None, ["alice", "bob"]),
])
def test_gpgsm_decrypts_smimegate_envelope(smimegate, pki, gpg_alice, cipher,
                                           recipients):
    msg = to_crlf(msg_attachment())
    args = ["encrypt"]
    for r in recipients:
        args += ["--recipient", pki / f"{r}.pem"]
    if cipher:
        args += ["--cipher", cipher]
    out = sg_ok(smimegate, args, msg)
    assert content_type(out)[1].get("smime-type") == "enveloped-data"
    der = extract_cms_der(out)
    assert cms_content_type(der) == "envelopedData"
    if cipher:
        assert OID[cipher] in der, f"{cipher} not used"
    assert der.count(OID["rsaEncryption"]) >= len(recipients)
    assert OID["rsaesOaep"] not in der

    res = gpg_alice.decrypt(der)
    assert res.rc == 0 and res.has("DECRYPTION_OKAY"), (
        f"{res}{decrypt_failure_hint(res)}")
    assert_same_content(res.output, msg)
    assert attachment_of(res.output) == ATTACHMENT_BYTES


def test_gpgsm_opens_smimegate_sign_then_encrypt(smimegate, pki, gpg_alice):
    """smimegate sign --opaque, then encrypt to Alice; gpgsm decrypts and
    verifies the inner signed-data.  UTF-8 subject, 8bit UTF-8 body."""
    msg = to_crlf(msg_8bit()).replace(
        b"Subject: smimegate test message",
        b"Subject: " + get_header(msg_utf8_subject(), "Subject").encode())
    signed = sg_ok(smimegate, sign_args(pki, "--opaque"), msg)
    enc = sg_ok(smimegate, ["encrypt", "--recipient", pki / "alice.pem",
                            "--cipher", "aes-256-cbc"], signed)
    assert decoded_subject(enc) == UTF8_SUBJECT_DECODED

    dec = gpg_alice.decrypt(extract_cms_der(enc))
    assert dec.rc == 0 and dec.has("DECRYPTION_OKAY"), (
        f"{dec}{decrypt_failure_hint(dec)}")
    assert content_type(dec.output)[0] == "application/pkcs7-mime"
    assert content_type(dec.output)[1].get("smime-type") == "signed-data"
    ver = gpg_alice.verify(extract_cms_der(dec.output))
    assert gpg_alice.good_signature(ver, fingerprint(pki / "alice.pem")), ver
    assert_same_content(ver.output, msg)


# ---------------------------------------------------------------------------
# gpgsm -> smimegate


def test_smimegate_verifies_gpgsm_detached(smimegate, pki, gpg_alice):
    msg = msg_crlf()
    entity = inner_entity(msg)
    sig = gpg_alice.sign(entity, fingerprint(pki / "alice.pem"), detached=True)
    assert sig[:2] == b"\x30\x80", "gpgsm is expected to write BER"
    wrapped = wrap_detached(outer_headers(msg), entity, sig, "sha-256")
    r, info = verify_json(smimegate, pki, wrapped)
    assert r.rc == 0, (info, r.stderr)
    assert info.get("signature_ok") is True and info.get("chain_ok") is True, info
    assert "alice@example.com" in info.get("signer_emails", []), info
    assert info.get("digest") == "sha256", info
    assert_same_content(r.out, msg)


def test_smimegate_verifies_gpgsm_opaque_chunked(smimegate, pki, gpg_alice):
    """gpgsm's opaque signature splits the content into 4096-byte BER
    chunks; smimegate must reassemble them."""
    msg, data = big_attachment_msg()
    entity = inner_entity(msg)
    der = gpg_alice.sign(entity, fingerprint(pki / "alice.pem"), detached=False)
    assert chunk_count(der) >= 3, "expected gpgsm's chunked encoding"
    wrapped = wrap_pkcs7_mime(outer_headers(msg), der, "signed-data")
    r, info = verify_json(smimegate, pki, wrapped)
    assert r.rc == 0, (info, r.stderr)
    assert info.get("signature_ok") is True and info.get("chain_ok") is True, info
    assert_same_content(r.out, msg)
    assert attachment_of(r.out) == data
    assert decoded_subject(r.out) == UTF8_SUBJECT_DECODED


def test_smimegate_rejects_tampered_gpgsm_signature(smimegate, pki, gpg_alice):
    msg = msg_crlf()
    entity = inner_entity(msg)
    sig = gpg_alice.sign(entity, fingerprint(pki / "alice.pem"), detached=True)
    tampered = entity.replace(b"Hello Bob", b"Hello Eve")
    assert tampered != entity
    r, info = verify_json(smimegate, pki,
                          wrap_detached(outer_headers(msg), tampered, sig, "sha-256"))
    assert r.rc == 1, (r.rc, info, r.stderr)
    assert info.get("signature_ok") is False, info


@pytest.mark.parametrize("cipher", [None, "AES256"])
def test_smimegate_decrypts_gpgsm_envelope_chunked(smimegate, pki, gpg_alice, cipher):
    """gpgsm encrypts to Bob and Alice (encrypted content in 4096-byte
    chunks); smimegate decrypts as Alice."""
    msg, data = big_attachment_msg()
    der = gpg_alice.encrypt(inner_entity(msg), [fingerprint(pki / "bob.pem"),
                                                fingerprint(pki / "alice.pem")],
                            cipher=cipher)
    assert der[:2] == b"\x30\x80"
    assert chunk_count(der) >= 3, "expected gpgsm's chunked encoding"
    if cipher == "AES256":
        assert OID["aes-256-cbc"] in der
    wrapped = wrap_pkcs7_mime(outer_headers(msg), der, "enveloped-data")
    out = sg_ok(smimegate, ["decrypt", "--cert", pki / "alice.pem",
                            "--key", pki / "alice.key"], wrapped)
    assert_same_content(out, msg)
    assert attachment_of(out) == data
    assert decoded_subject(out) == UTF8_SUBJECT_DECODED


def test_smimegate_opens_gpgsm_sign_then_encrypt(smimegate, pki, gpg_alice):
    """gpgsm signs (opaque) a message with a binary attachment and a UTF-8
    subject, then encrypts the signed message to Alice; smimegate decrypts
    (with the legacy PKCS#12) and then verifies."""
    msg = to_crlf(msg_attachment()).replace(
        b"Subject: smimegate test message",
        b"Subject: " + get_header(msg_utf8_subject(), "Subject").encode())
    alice = fingerprint(pki / "alice.pem")
    sd = gpg_alice.sign(inner_entity(msg), alice, detached=False)
    signed = wrap_pkcs7_mime(outer_headers(msg), sd, "signed-data")
    env = gpg_alice.encrypt(inner_entity(signed), [alice])
    wrapped = wrap_pkcs7_mime(outer_headers(msg), env, "enveloped-data")

    dec = sg_ok(smimegate, ["decrypt", "--p12", pki / "alice-legacy.p12",
                            "--pass-file", pki / "pass.txt"], wrapped)
    assert content_type(dec)[1].get("smime-type") == "signed-data"
    r, info = verify_json(smimegate, pki, dec)
    assert r.rc == 0, (info, r.stderr)
    assert info.get("signature_ok") is True and info.get("chain_ok") is True, info
    assert_same_content(r.out, msg)
    assert attachment_of(r.out) == ATTACHMENT_BYTES
    assert decoded_subject(r.out) == UTF8_SUBJECT_DECODED
