"""Interop with NSS (cmsutil) — the CMS engine of Thunderbird.

Both directions:
- smimegate signs / encrypts, cmsutil verifies / decrypts;
- cmsutil signs / encrypts (BER, indefinite lengths, the signer
  certificate twice), we wrap its CMS into MIME, smimegate verifies /
  decrypts.

cmsutil -D exits 0 even for a bad signature, so the verdict is always read
from its signerN.status lines (nss_util.NssDb.decode).  The verifying NSS
database trusts only the test root: the intermediate must come from the
message.
"""

import pytest

from nss_util import (OID, NssDb, assert_same_content, cms_content_type,
                      decoded_subject, inner_entity, outer_headers,
                      run_smimegate, sg_ok, to_crlf, wrap_detached,
                      wrap_pkcs7_mime)
from smime_util import (ATTACHMENT_BYTES, UTF8_SUBJECT_DECODED,
                        attachment_of, content_type, extract_cms_der,
                        extract_signed_part, get_header, msg_attachment,
                        msg_8bit, msg_crlf, msg_utf8_subject)

DIGESTS = ["sha256", "sha384", "sha512"]


@pytest.fixture
def verifier(pki):
    """An NSS database that trusts only the test root (a Thunderbird
    profile that has never seen Alice)."""
    db = NssDb()
    db.add_anchor(pki / "trust.pem", "root")
    yield db
    db.close()


@pytest.fixture
def alice_nss(pki):
    """An NSS database holding Alice's key (from the modern PKCS#12), the
    root as anchor, the intermediate, and Bob's certificate."""
    db = NssDb()
    db.add_anchor(pki / "trust.pem", "root")
    db.add_cert(pki / "inter.pem", "inter")
    db.import_p12(pki / "alice.p12", pki / "pass.txt", "alice",
                  cert_pem=pki / "alice.pem")
    db.add_cert(pki / "bob.pem", "bob")
    yield db
    db.close()


def sign_args(pki, *extra):
    return ["sign", "--signer", pki / "alice.pem", "--key", pki / "alice.key",
            "--certfile", pki / "alice-chain.pem", *extra]


def verify_json(smimegate, pki, msg, trust="trust.pem"):
    r = run_smimegate(smimegate, ["verify", "--trust", pki / trust, "--json"], msg)
    try:
        info = r.json()
    except ValueError:
        raise AssertionError(f"verify --json printed no JSON (exit {r.rc}): "
                             f"{r.stdout[:300]!r} {r.stderr}")
    return r, info


def with_utf8_subject(msg: bytes) -> bytes:
    """MSG with the RFC 2047 UTF-8 Subject of smime_util.msg_utf8_subject."""
    subj = get_header(msg_utf8_subject(), "Subject").encode()
    out = msg.replace(b"Subject: smimegate test message", b"Subject: " + subj, 1)
    assert out != msg
    return out


def flip_last_text_byte(data: bytes) -> bytes:
    """Change one content byte near the end (not a line end)."""
    i = len(data.rstrip(b"\r\n")) - 1
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]


# ---------------------------------------------------------------------------
# smimegate -> NSS


@pytest.mark.parametrize("digest", DIGESTS)
def test_nss_verifies_smimegate_detached(smimegate, pki, verifier, digest):
    msg = msg_crlf()
    out = sg_ok(smimegate, sign_args(pki, "--digest", digest), msg)
    ctype, params = content_type(out)
    assert ctype == "multipart/signed"
    assert params.get("micalg") == "sha-" + digest[3:]
    signed = extract_signed_part(out)
    sig = extract_cms_der(out)
    assert cms_content_type(sig) == "signedData"
    assert OID[digest] in sig, f"{digest} digestAlgorithm not in signature"

    res = verifier.decode(sig, content=signed)
    assert res.all_good, res.header
    assert_same_content(signed, msg)

    # The same signature over one changed byte must not verify in NSS:
    # proves the check above looked at these bytes.
    bad = verifier.decode(sig, content=flip_last_text_byte(signed))
    assert not bad.all_good and "DigestMismatch" in bad.statuses, bad.header


def test_nss_verifies_smimegate_detached_lf_input(smimegate, pki, verifier):
    """An LF message gets LF output; after the CRLF canonicalization every
    MTA applies, NSS verifies it.  Content is 8bit UTF-8 (re-encoded)."""
    msg = msg_8bit()
    out = sg_ok(smimegate, sign_args(pki), msg)
    assert b"\r\n" not in out, "LF input must give LF output"
    signed = extract_signed_part(out, canonical=True)
    res = verifier.decode(extract_cms_der(out), content=signed)
    assert res.all_good, res.header
    assert_same_content(signed, msg)


@pytest.mark.parametrize("digest", ["sha256", "sha512"])
def test_nss_verifies_smimegate_opaque(smimegate, pki, verifier, digest):
    msg = to_crlf(msg_attachment())
    out = sg_ok(smimegate, sign_args(pki, "--opaque", "--digest", digest), msg)
    ctype, params = content_type(out)
    assert ctype == "application/pkcs7-mime"
    assert params.get("smime-type") == "signed-data"
    der = extract_cms_der(out)
    assert cms_content_type(der) == "signedData"
    assert OID[digest] in der

    res = verifier.decode(der)
    assert res.all_good, res.header
    assert_same_content(res.content, msg)
    assert attachment_of(res.content) == ATTACHMENT_BYTES


@pytest.mark.parametrize("cipher", ["aes-256-cbc", "aes-128-cbc", None])
def test_nss_decrypts_smimegate_envelope(smimegate, pki, alice_nss, cipher):
    """Three RSA recipients; NSS holds the key of the last one (Alice)."""
    msg = to_crlf(msg_utf8_subject())
    args = ["encrypt", "--recipient", pki / "bob.pem",
            "--recipient", pki / "dave.pem", "--recipient", pki / "alice.pem"]
    if cipher:
        args += ["--cipher", cipher]
    out = sg_ok(smimegate, args, msg)
    ctype, params = content_type(out)
    assert ctype == "application/pkcs7-mime"
    assert params.get("smime-type") == "enveloped-data"
    assert decoded_subject(out) == UTF8_SUBJECT_DECODED
    der = extract_cms_der(out)
    assert cms_content_type(der) == "envelopedData"
    # The default (cipher None) must be a CBC cipher NSS can read; the
    # decrypt below proves it.
    if cipher:
        assert OID[cipher] in der, f"{cipher} not used"
    assert der.count(OID["rsaEncryption"]) >= 3, "PKCS#1 v1.5 key transport"
    assert OID["rsaesOaep"] not in der

    res = alice_nss.decode(der)
    assert res.rc == 0, res.stderr
    assert res.content, "NSS produced no plaintext"
    assert_same_content(res.content, msg)


def test_nss_opens_smimegate_sign_then_encrypt(smimegate, pki, alice_nss, verifier):
    """smimegate sign (detached) then encrypt to Alice; NSS
    decrypts, then verifies the inner multipart/signed."""
    msg = to_crlf(msg_attachment())
    signed_msg = sg_ok(smimegate, sign_args(pki), msg)
    enc = sg_ok(smimegate, ["encrypt", "--recipient", pki / "alice.pem",
                            "--cipher", "aes-256-cbc"], signed_msg)
    res = alice_nss.decode(extract_cms_der(enc))
    assert res.rc == 0 and res.content, res.stderr
    inner = res.content
    ctype, _ = content_type(inner)
    assert ctype == "multipart/signed"
    sig = verifier.decode(extract_cms_der(inner),
                          content=extract_signed_part(inner, canonical=True))
    assert sig.all_good, sig.header
    assert attachment_of(extract_signed_part(inner)) == ATTACHMENT_BYTES


# ---------------------------------------------------------------------------
# NSS -> smimegate


@pytest.mark.parametrize("digest", ["SHA256", "SHA384", "SHA512"])
def test_smimegate_verifies_nss_detached(smimegate, pki, alice_nss, digest):
    msg = msg_crlf()
    entity = inner_entity(msg)
    sig = alice_nss.sign(entity, "alice", detached=True, digest=digest)
    assert sig[:2] == b"\x30\x80", "NSS is expected to write BER (indefinite)"
    wrapped = wrap_detached(outer_headers(msg), entity, sig,
                            "sha-" + digest[3:])
    r, info = verify_json(smimegate, pki, wrapped)
    assert r.rc == 0, (info, r.stderr)
    assert info.get("signature_ok") is True and info.get("chain_ok") is True, info
    assert "alice@example.com" in info.get("signer_emails", []), info
    assert info.get("digest") == digest.lower(), info
    assert_same_content(r.out, msg)
    assert get_header(r.out, "Subject") == get_header(msg, "Subject")


def test_smimegate_verifies_nss_opaque_binary(smimegate, pki, alice_nss):
    """Opaque NSS signature over a message with a binary attachment and a
    UTF-8 subject; content bigger than one NSS chunk."""
    msg = with_utf8_subject(to_crlf(msg_attachment()))
    entity = inner_entity(msg)
    der = alice_nss.sign(entity, "alice", detached=False, digest="SHA256")
    assert der[:2] == b"\x30\x80"
    wrapped = wrap_pkcs7_mime(outer_headers(msg), der, "signed-data")
    r, info = verify_json(smimegate, pki, wrapped)
    assert r.rc == 0, (info, r.stderr)
    assert info.get("signature_ok") is True and info.get("chain_ok") is True, info
    assert "alice@example.com" in info.get("signer_emails", []), info
    assert_same_content(r.out, msg)
    assert attachment_of(r.out) == ATTACHMENT_BYTES
    assert decoded_subject(r.out) == UTF8_SUBJECT_DECODED


@pytest.mark.parametrize("where", ["body", "header"])
def test_smimegate_rejects_tampered_nss_signature(smimegate, pki, alice_nss, where):
    msg = msg_crlf()
    entity = inner_entity(msg)
    sig = alice_nss.sign(entity, "alice", detached=True)
    if where == "body":
        tampered = entity.replace(b"Hello Bob", b"Hello Eve")
    else:
        tampered = entity.replace(b"charset=us-ascii", b"charset=iso-8859-1")
    assert tampered != entity
    good = wrap_detached(outer_headers(msg), entity, sig, "sha-256")
    bad = wrap_detached(outer_headers(msg), tampered, sig, "sha-256")
    assert run_smimegate(smimegate, ["verify", "--trust", pki / "trust.pem"],
                         good).rc == 0
    r, info = verify_json(smimegate, pki, bad)
    assert r.rc == 1, (r.rc, info, r.stderr)
    assert info.get("signature_ok") is False, info


def test_smimegate_rejects_nss_signature_untrusted(smimegate, pki, alice_nss):
    """A good NSS signature whose root is not in --trust: exit 1."""
    msg = msg_crlf()
    der = alice_nss.sign(inner_entity(msg), "alice", detached=False)
    wrapped = wrap_pkcs7_mime(outer_headers(msg), der, "signed-data")
    r, info = verify_json(smimegate, pki, wrapped, trust="rogue-root.pem")
    assert r.rc == 1, (r.rc, info, r.stderr)
    assert info.get("chain_ok") is False, info


@pytest.mark.parametrize("keyform", ["pem", "p12"])
def test_smimegate_decrypts_nss_envelope(smimegate, pki, alice_nss, keyform):
    """cmsutil -E to Bob and Alice (AES-128-CBC, BER); smimegate decrypts
    as Alice, from PEM files or the PKCS#12."""
    msg = to_crlf(msg_attachment())
    der = alice_nss.encrypt(inner_entity(msg), ["bob", "alice"])
    assert der[:2] == b"\x30\x80"
    assert OID["aes-128-cbc"] in der
    wrapped = wrap_pkcs7_mime(outer_headers(msg), der, "enveloped-data")
    if keyform == "pem":
        key = ["--cert", pki / "alice.pem", "--key", pki / "alice.key"]
    else:
        key = ["--p12", pki / "alice.p12", "--pass-file", pki / "pass.txt"]
    out = sg_ok(smimegate, ["decrypt", *key], wrapped)
    assert_same_content(out, msg)
    assert attachment_of(out) == ATTACHMENT_BYTES
    assert get_header(out, "Subject") == get_header(msg, "Subject")


def test_smimegate_decrypt_nss_envelope_not_recipient(smimegate, pki, alice_nss):
    """An NSS envelope for Bob only: Dave's key must give exit 1."""
    msg = msg_crlf()
    der = alice_nss.encrypt(inner_entity(msg), ["bob"])
    wrapped = wrap_pkcs7_mime(outer_headers(msg), der, "enveloped-data")
    r = run_smimegate(smimegate, ["decrypt", "--cert", pki / "dave.pem",
                                  "--key", pki / "dave.key"], wrapped)
    assert r.rc == 1, (r.rc, r.stderr)
    assert b"Hello Bob" not in r.out


def test_smimegate_opens_nss_sign_then_encrypt(smimegate, pki, alice_nss):
    """NSS signs (detached, SHA-256, signingTime) and encrypts the
    multipart/signed to Alice; smimegate decrypts, then verifies."""
    msg = to_crlf(msg_8bit())
    entity = inner_entity(msg)
    sig = alice_nss.sign(entity, "alice", detached=True)
    signed = wrap_detached(outer_headers(msg), entity, sig, "sha-256")
    env = alice_nss.encrypt(inner_entity(signed), ["alice"])
    wrapped = wrap_pkcs7_mime(outer_headers(msg), env, "enveloped-data")

    dec = sg_ok(smimegate, ["decrypt", "--cert", pki / "alice.pem",
                            "--key", pki / "alice.key"], wrapped)
    assert content_type(dec)[0] == "multipart/signed"
    r, info = verify_json(smimegate, pki, dec)
    assert r.rc == 0, (info, r.stderr)
    assert info.get("signature_ok") is True and info.get("chain_ok") is True, info
    assert_same_content(r.out, msg)
