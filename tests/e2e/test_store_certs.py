"""Our own certificates in the key store: `cert create`, `cert csr`,
`cert import` (PEM), checked with OpenSSL, NSS and gpgsm.

- cert create: every subject field, validity, keyUsage / EKU / SANs (a
  wildcard domain too) and the key type and size of each --key choice, as
  `openssl x509 -text` prints them; NSS accepts the certificate
  (certutil -V -u S); a message signed with it (cert export --pem plus the
  key out of a legacy p12) verifies in gpgsm, cmsutil, openssl cms and
  smimegate verify, each trusting the self-signed certificate.
- cert csr: `openssl req -verify`, the SANs and the requested KU/EKU; the
  CSR signed by the test CA and imported back attaches to the pending key;
  mail signed with it verifies against the test root.
- cert import (PEM): key mismatch, wrong purpose (even with --force),
  warnings (expired, self-signed, weak key) only with --force.
"""

import hashlib
import re
import time
from datetime import datetime, timezone

import pytest

from gpgsm_util import GpgsmHome, colon_fpr, fingerprint
from nss_util import NssDb, der_to_pem, run_tool
from smime_util import (extract_cms_der, extract_signed_part, msg_crlf,
                        openssl)
from store_util import (export_identity, extension_critical,
                        extension_value, pem_blocks, subject_fields,
                        x509_field, x509_text)

KEY_USAGE = {
    "rsa": ["Digital Signature", "Non Repudiation", "Key Encipherment"],
    "ec": ["Digital Signature", "Non Repudiation", "Key Agreement"],
}
KEY_TYPES = {
    "rsa:2048": ("rsa", "Public-Key: (2048 bit)", None),
    "rsa:3072": ("rsa", "Public-Key: (3072 bit)", None),
    "rsa:4096": ("rsa", "Public-Key: (4096 bit)", None),
    "ec:p256": ("ec", "Public-Key: (256 bit)", "NIST CURVE: P-256"),
    "ec:p384": ("ec", "Public-Key: (384 bit)", "NIST CURVE: P-384"),
}
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def iso(s):
    """'2024-01-01 00:00:00Z' or '2024-01-01T00:00:00Z' -> epoch."""
    return datetime.strptime(s.replace(" ", "T"), "%Y-%m-%dT%H:%M:%SZ") \
        .replace(tzinfo=timezone.utc).timestamp()


def key_usage_list(text):
    v = extension_value(text, "Key Usage")
    assert v is not None, "no keyUsage extension"
    return [x.strip() for x in v.split(",")]


def exported_cert(store, name, d):
    pem = store.ok("cert", "export", name, "--pem")
    ders = pem_blocks(pem)
    assert ders, f"cert export {name} --pem: no certificate"
    p = d / f"{name}-exported.pem"
    p.write_bytes(der_to_pem(ders[0]))
    return p, ders


def sign_with(run, ident, extra_chain=None, msg=None):
    args = ["sign", "--signer", ident.cert, "--key", ident.key]
    chain = extra_chain or ident.chain
    if chain:
        args += ["--certfile", chain]
    proc = run(args, input=msg or msg_crlf())
    assert proc.returncode == 0, (
        "smimegate sign with the exported certificate and key: exit "
        f"{proc.returncode}: {proc.stderr.decode('utf-8', 'replace')}")
    return proc.stdout


def pubkey_of(*args):
    return openssl(*args, "-pubkey", "-noout").stdout


# ---------------------------------------------------------------------------
# cert create


def test_create_every_subject_field_validity_and_sans(store, tmp_path):
    t0 = time.time()
    store.ok("cert", "create", "--name", "gateway",
             "--cn", "Example Mail Gateway", "--org", "Example GmbH",
             "--unit", "IT Security", "--city", "Munich",
             "--state", "Bavaria", "--country", "DE", "--days", "400",
             "--san-domain", "example.net,*.example.net",
             "--san-email", "gateway@example.net,postmaster@example.net",
             "--key", "rsa:2048")
    pem, ders = exported_cert(store, "gateway", tmp_path)
    assert len(ders) == 1, "a self-signed certificate has no chain"
    text = x509_text(pem)

    assert subject_fields(text) == {
        "C": "DE", "ST": "Bavaria", "L": "Munich", "O": "Example GmbH",
        "OU": "IT Security", "CN": "Example Mail Gateway"}, text
    # Self-signed: the issuer is the subject.
    assert x509_field(pem, "-issuer") == x509_field(pem, "-subject")

    nb = iso(x509_field(pem, "-startdate"))
    na = iso(x509_field(pem, "-enddate"))
    assert nb <= time.time() + 5, "notBefore lies in the future"
    assert abs(na - (t0 + 400 * 86400)) < 3600, (
        f"notAfter is not 400 days from now: {x509_field(pem, '-enddate')}")

    assert key_usage_list(text) == KEY_USAGE["rsa"], text
    assert extension_value(text, "Extended Key Usage") == "E-mail Protection"
    san = extension_value(text, "Subject Alternative Name")
    assert san is not None, "no subjectAltName"
    assert sorted(x.strip() for x in san.split(",")) == sorted([
        "email:gateway@example.net", "email:postmaster@example.net",
        "DNS:example.net", "DNS:*.example.net"]), san
    assert "Public-Key: (2048 bit)" in text
    assert "rsaEncryption" in text

    info = store.show("cert", "gateway")
    assert sorted(info["emails"]) == ["gateway@example.net",
                                      "postmaster@example.net"]
    assert sorted(info["domains"]) == ["*.example.net", "example.net"]
    assert info["days_left"] in (399, 400), info["days_left"]
    for f in ("CN=Example Mail Gateway", "O=Example GmbH", "OU=IT Security",
              "L=Munich", "ST=Bavaria", "C=DE"):
        assert f in info["subject"], (f, info["subject"])


@pytest.mark.parametrize("key", sorted(KEY_TYPES))
def test_create_key_types(store, tmp_path, key):
    family, bits_line, curve_line = KEY_TYPES[key]
    name = "k-" + key.replace(":", "-")
    store.ok("cert", "create", "--name", name, "--cn", f"Key {key}",
             "--san-email", "keys@example.com", "--days", "30",
             "--key", key)
    pem, _ = exported_cert(store, name, tmp_path)
    text = x509_text(pem)
    assert bits_line in text, f"{key}: expected {bits_line!r}\n{text}"
    if family == "rsa":
        assert "Public Key Algorithm: rsaEncryption" in text
    else:
        assert "Public Key Algorithm: id-ecPublicKey" in text
        assert curve_line in text, f"{key}: expected {curve_line!r}"
    assert key_usage_list(text) == KEY_USAGE[family], (key, text)
    assert extension_critical(text, "Key Usage")
    assert extension_value(text, "Extended Key Usage") == "E-mail Protection"
    assert extension_value(text, "Subject Alternative Name") == \
        "email:keys@example.com"
    na = iso(x509_field(pem, "-enddate"))
    assert abs(na - (time.time() + 30 * 86400)) < 3600

    info = store.show("cert", name)
    assert info["key_type"] == key
    assert sorted(info["purposes"]) == ["encrypt", "sign"]


def test_create_json_fields(store, tmp_path):
    store.ok("cert", "create", "--name", "alice", "--cn", "Alice Example",
             "--org", "Example GmbH", "--san-email", "alice@example.com",
             "--san-domain", "example.com", "--days", "90",
             "--key", "ec:p256")
    pem, ders = exported_cert(store, "alice", tmp_path)
    info = store.show("cert", "alice")
    for k in ("name", "subject", "issuer", "serial", "fingerprint",
              "key_type", "emails", "domains", "not_before", "not_after",
              "days_left", "purposes", "self_signed", "pending", "source"):
        assert k in info, f"cert show --json: no {k!r}: {info}"
    assert info["name"] == "alice"
    assert info["fingerprint"] == hashlib.sha256(ders[0]).hexdigest()
    serial = x509_field(pem, "-serial")
    assert int(info["serial"].replace(":", ""), 16) == int(serial, 16), (
        info["serial"], serial)
    assert info["key_type"] == "ec:p256"
    assert info["emails"] == ["alice@example.com"]
    assert info["domains"] == ["example.com"]
    for k, opt in (("not_before", "-startdate"), ("not_after", "-enddate")):
        assert ISO_Z.match(info[k]), f"{k} not ISO 8601 UTC: {info[k]!r}"
        assert iso(info[k]) == iso(x509_field(pem, opt)), (k, info[k])
    assert isinstance(info["days_left"], int) and not isinstance(
        info["days_left"], bool)
    assert info["days_left"] in (89, 90)
    assert sorted(info["purposes"]) == ["encrypt", "sign"]
    assert info["self_signed"] is True
    assert info["pending"] is False
    assert info["source"] == "created"
    assert "CN=Alice Example" in info["subject"]
    assert info["issuer"] == info["subject"]

    listed = store.entries("cert")
    assert [e["name"] for e in listed] == ["alice"]
    assert listed[0]["fingerprint"] == info["fingerprint"]
    assert listed[0]["pending"] is False


def test_create_refuses_existing_name_and_bad_arguments(store):
    store.ok("cert", "create", "--name", "dup", "--cn", "Dup",
             "--key", "ec:p256")
    line = store.fail("cert", "create", "--name", "dup", "--cn", "Dup 2",
                      "--key", "ec:p256", code=1)
    assert "exists" in line
    store.fail("cert", "create", "--name", "nocn", code=2)
    store.fail("cert", "create", "--cn", "No Name", code=2)
    store.fail("cert", "create", "--name", "weak", "--cn", "W",
               "--key", "rsa:1024", code=2)
    store.fail("cert", "create", "--name", "cc", "--cn", "C",
               "--country", "Germany", "--key", "ec:p256", code=2)
    assert store.names("cert") == ["dup"]


# ---------------------------------------------------------------------------
# NSS accepts it; it signs mail that gpgsm, NSS, OpenSSL and smimegate verify


def test_nss_accepts_created_certificate(store, tmp_path):
    store.ok("cert", "create", "--name", "nssuser", "--cn", "NSS User",
             "--org", "Example GmbH", "--san-email", "nss@example.com",
             "--key", "rsa:2048")
    pem, _ = exported_cert(store, "nssuser", tmp_path)
    with NssDb() as db:
        run_tool(["certutil", "-A", "-d", db.spec, "-n", "nssuser",
                  "-t", "CT,C,C", "-a", "-i", pem])
        for usage in ("S", "R"):
            r = run_tool(["certutil", "-V", "-d", db.spec, "-u", usage,
                          "-n", "nssuser"], check=False)
            out = (r.stdout + r.stderr).decode("utf-8", "replace")
            assert r.returncode == 0 and "certificate is valid" in out, (
                f"certutil -t CT,C,C; certutil -V -u {usage}: {out.strip()} "
                f"(basicConstraints: "
                f"{extension_value(x509_text(pem), 'Basic Constraints')})")


@pytest.mark.parametrize("key", ["rsa:2048", "ec:p256"])
def test_created_certificate_signs_mail_that_others_verify(
        store, run, tmp_path, pki, key):
    store.ok("cert", "create", "--name", "signer", "--cn", "Alice Signer",
             "--san-email", "alice@example.com", "--days", "30",
             "--key", key)
    ident = export_identity(store, "signer", tmp_path / "id", legacy=True)
    assert ident.chain is None
    # The key from the p12 belongs to the exported certificate.
    assert pubkey_of("x509", "-in", ident.cert) == \
        openssl("pkey", "-in", ident.key, "-pubout").stdout

    msg = msg_crlf()
    out = sign_with(run, ident, msg=msg)
    signed, sig = extract_signed_part(out), extract_cms_der(out)

    # smimegate and openssl cms, trusting the certificate itself.
    check = run(["verify", "--trust", ident.cert], input=out)
    assert check.returncode == 0, check.stderr.decode()
    ossl = openssl("cms", "-verify", "-CAfile", ident.cert, "-purpose",
                   "smimesign", input=out, check=False)
    assert ossl.returncode == 0, ossl.stderr.decode()

    # gpgsm: the self-signed end-entity certificate as a root ("relax":
    # gpgsm otherwise wants a CA certificate as anchor).  RSA: the legacy
    # p12 must import too (gpgsm 2.2 crashes on EC PKCS#12 keys).
    fpr = fingerprint(ident.cert)
    g = GpgsmHome()
    try:
        (g.home / "trustlist.txt").write_text(colon_fpr(fpr) + " S relax\n")
        if key.startswith("rsa"):
            def remake():
                store.ok("cert", "export", "signer", "--p12", ident.p12,
                         "--pass-file", ident.passfile, "--legacy")
                return ident.p12
            g.import_p12(ident.p12, ident.passfile.read_text(), remake=remake)
        else:
            g.import_certs(ident.cert)
        res = g.verify(sig, signed)
        assert g.good_signature(res, fpr), (res.status, res.stderr)
    finally:
        g.close()

    # NSS: the self-signed certificate as anchor.
    with NssDb() as db:
        run_tool(["certutil", "-A", "-d", db.spec, "-n", "signer",
                  "-t", "CT,C,C", "-a", "-i", ident.cert])
        dec = db.decode(sig, content=signed)
        assert dec.all_good, f"cmsutil -D: {dec.statuses} {dec.header}"


# ---------------------------------------------------------------------------
# cert csr -> CA -> cert import


EE_EXT = """\
[ smime ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, {ku}
extendedKeyUsage       = {eku}
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
subjectAltName         = {san}
"""


def ca_sign(pki, csr, out, san, d, ku=("digitalSignature, nonRepudiation, "
                                      "keyEncipherment"),
            eku="emailProtection", days=30, ca="inter"):
    """Issues a certificate for CSR with the test CA (openssl x509 -req)."""
    ext = d / "ext.cnf"
    ext.write_text(EE_EXT.format(ku=ku, eku=eku, san=san))
    openssl("x509", "-req", "-in", csr, "-CA", pki / f"{ca}.pem",
            "-CAkey", pki / f"{ca}.key", "-days", str(days), "-sha256",
            "-extfile", ext, "-extensions", "smime", "-out", out)
    return out


def test_csr_signed_by_ca_attaches_and_signs_mail(store, run, tmp_path, pki):
    req = tmp_path / "req.pem"
    store.ok("cert", "csr", "carol", "--out", req, "--cn", "Carol Example",
             "--org", "Example GmbH", "--country", "DE",
             "--san-email", "carol@example.com,c.example@example.com",
             "--key", "rsa:2048")
    assert b"PRIVATE KEY" not in req.read_bytes()
    v = openssl("req", "-verify", "-noout", "-in", req, check=False)
    assert v.returncode == 0 and b"verify OK" in v.stdout + v.stderr, (
        v.stdout + v.stderr)
    text = openssl("req", "-text", "-noout", "-in", req).stdout.decode()
    assert "Requested Extensions" in text, text
    assert key_usage_list(text) == KEY_USAGE["rsa"], text
    assert extension_value(text, "Extended Key Usage") == "E-mail Protection"
    san = extension_value(text, "Subject Alternative Name")
    assert san is not None and sorted(x.strip() for x in san.split(",")) == [
        "email:c.example@example.com", "email:carol@example.com"], san
    assert re.search(r"Subject: .*CN ?= ?Carol Example", text), text
    assert re.search(r"Subject: .*O ?= ?Example GmbH", text), text

    # Pending in the store.
    [pend] = [e for e in store.entries("cert") if e["name"] == "carol"]
    assert pend["pending"] is True and pend["source"] == "csr", pend
    assert store.show("cert", "carol")["pending"] is True

    # The test CA signs it; imported back without a key, it attaches.
    signed = ca_sign(pki, req, tmp_path / "signed.pem",
                     "email:carol@example.com,email:c.example@example.com",
                     tmp_path)
    full = tmp_path / "signed-full.pem"
    full.write_bytes(signed.read_bytes() + (pki / "inter.pem").read_bytes())
    store.ok("cert", "import", full)

    entries = store.entries("cert")
    assert [e["name"] for e in entries] == ["carol"], entries
    info = entries[0]
    assert info["pending"] is False, info
    assert "CN=smimegate Test Intermediate CA" in info["issuer"], info
    assert info["self_signed"] is False
    assert info["fingerprint"] == hashlib.sha256(
        pem_blocks(signed.read_bytes())[0]).hexdigest()
    assert sorted(info["emails"]) == ["c.example@example.com",
                                      "carol@example.com"]

    ident = export_identity(store, "carol", tmp_path / "id")
    assert ident.certs_der[0] == pem_blocks(signed.read_bytes())[0]
    assert pem_blocks((pki / "inter.pem").read_bytes())[0] in \
        ident.certs_der[1:], "the imported chain is not exported"
    # The key kept since the CSR is the certificate's key.
    assert pubkey_of("req", "-in", req) == \
        openssl("pkey", "-in", ident.key, "-pubout").stdout

    msg = msg_crlf().replace(b"alice@example.com", b"carol@example.com")
    out = sign_with(run, ident, extra_chain=pki / "inter.pem", msg=msg)
    check = run(["verify", "--trust", pki / "trust.pem"], input=out)
    assert check.returncode == 0, check.stderr.decode()
    ossl = openssl("cms", "-verify", "-CAfile", pki / "trust.pem",
                   "-purpose", "smimesign", input=out, check=False)
    assert ossl.returncode == 0, ossl.stderr.decode()


JSON_KEYS = ("name", "subject", "issuer", "serial", "fingerprint",
             "key_type", "emails", "domains", "not_before", "not_after",
             "days_left", "purposes", "self_signed", "pending", "source")


def test_pending_csr_json_has_every_key(store, tmp_path):
    """A pending CSR is an object like any other: every key of the
    contract is there; what the CSR knows (subject, key type, SANs) is
    filled in, what only a certificate knows may be null."""
    store.ok("cert", "csr", "pend", "--out", tmp_path / "req.pem",
             "--cn", "Pending User", "--san-email", "pend@example.com",
             "--san-domain", "pend.example.com", "--key", "ec:p384")
    for obj in (store.show("cert", "pend"), store.entries("cert")[0]):
        missing = [k for k in JSON_KEYS if k not in obj]
        assert not missing, f"pending CSR object lacks {missing}: {obj}"
        assert obj["pending"] is True and obj["source"] == "csr"
        assert "CN=Pending User" in (obj["subject"] or ""), obj
        assert obj["key_type"] == "ec:p384", obj
        assert obj["emails"] == ["pend@example.com"], obj
        assert obj["domains"] == ["pend.example.com"], obj


def test_csr_for_existing_certificate_uses_its_key_and_subject(
        store, tmp_path):
    store.ok("cert", "create", "--name", "dave", "--cn", "Dave Example",
             "--org", "Example GmbH", "--san-email", "dave@example.net",
             "--key", "ec:p256")
    pem, _ = exported_cert(store, "dave", tmp_path)
    req = tmp_path / "renew.pem"
    store.ok("cert", "csr", "dave", "--out", req)
    v = openssl("req", "-verify", "-noout", "-in", req, check=False)
    assert v.returncode == 0, v.stderr.decode()
    assert pubkey_of("req", "-in", req) == pubkey_of("x509", "-in", pem)
    subj = openssl("req", "-in", req, "-noout", "-subject", "-nameopt",
                   "RFC2253").stdout.decode().split("=", 1)[1].strip()
    assert subj == x509_field(pem, "-subject")
    text = openssl("req", "-text", "-noout", "-in", req).stdout.decode()
    assert "email:dave@example.net" in text
    # Still a usable certificate, not pending.
    assert store.show("cert", "dave")["pending"] is False


def test_csr_new_name_requires_cn_and_unknown_cert_is_refused(
        store, tmp_path, pki):
    store.fail("cert", "csr", "nocn", "--out", tmp_path / "r.pem", code=2)
    assert not (tmp_path / "r.pem").exists()
    assert store.names("cert") == []
    # A CA-issued certificate without a key that matches no pending CSR.
    r = store.cmd("cert", "import", pki / "bob.pem")
    assert r.returncode != 0, "a certificate without key and CSR was stored"
    assert store.names("cert") == []


# ---------------------------------------------------------------------------
# cert import (PEM): refusals and warnings


def test_import_pem_with_key_file_and_in_one_file(store, tmp_path, pki):
    store.ok("cert", "import", pki / "alice-full.pem", "--key",
             pki / "alice.key", "--name", "alice")
    combined = tmp_path / "dave-all.pem"
    combined.write_bytes((pki / "dave.pem").read_bytes() +
                         (pki / "dave.key").read_bytes() +
                         (pki / "inter.pem").read_bytes())
    store.ok("cert", "import", combined, "--name", "dave")
    assert store.names("cert") == ["alice", "dave"]
    a = store.show("cert", "alice")
    assert a["source"] == "imported" and a["pending"] is False
    assert a["fingerprint"] == hashlib.sha256(
        pem_blocks((pki / "alice.pem").read_bytes())[0]).hexdigest()
    assert a["emails"] == ["alice@example.com"]
    out = store.ok("cert", "export", "dave", "--pem")
    assert pem_blocks(out)[0] == pem_blocks((pki / "dave.pem").read_bytes())[0]
    assert b"PRIVATE KEY" not in out


@pytest.mark.parametrize("how", ["key-option", "same-file"])
def test_import_key_mismatch(store, tmp_path, pki, how):
    if how == "key-option":
        args = [pki / "alice.pem", "--key", pki / "bob.key"]
    else:
        f = tmp_path / "mixed.pem"
        f.write_bytes((pki / "alice.pem").read_bytes() +
                      (pki / "bob.key").read_bytes())
        args = [f]
    store.fail("cert", "import", *args, "--name", "x", code=1,
               status="key-mismatch")
    store.fail("cert", "import", *args, "--name", "x", "--force", code=1,
               status="key-mismatch")
    assert store.names("cert") == []


def test_import_wrong_purpose_refused_even_with_force(store, tmp_path, pki):
    for force in ((), ("--force",)):
        line = store.fail("cert", "import", pki / "noeku.pem", "--key",
                          pki / "noeku.key", "--name", "noeku", *force,
                          code=1)
        assert re.search(r"purpose|usage|emailProtection|e-?mail",
                         line, re.I), line
    # keyUsage with neither a signing nor an encryption bit.
    key = tmp_path / "crl.key"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-out", key)
    req = tmp_path / "crl.csr"
    openssl("req", "-new", "-key", key, "-subj", "/CN=CRL Signer Only",
            "-out", req)
    cert = ca_sign(pki, req, tmp_path / "crl.pem", "email:crl@example.com",
                   tmp_path, ku="cRLSign")
    for force in ((), ("--force",)):
        line = store.fail("cert", "import", cert, "--key", key, "--name",
                          "crl", *force, code=1)
        assert re.search(r"purpose|usage", line, re.I), line
    assert store.names("cert") == []


def test_import_sign_only_certificate_is_refused(store, pki):
    """nokeyenc: keyUsage digitalSignature only.  Seed 002 (and the issue):
    a signing certificate with keyUsage must have digitalSignature AND
    nonRepudiation, an encryption one keyEncipherment: this one is fit for
    neither, an error that --force does not override."""
    for extra in ((), ("--force",)):
        line = store.fail("cert", "import", pki / "nokeyenc.pem", "--key",
                          pki / "nokeyenc.key", "--name", "nokeyenc",
                          *extra, code=1)
        assert "key-usage" in line and "nonRepudiation" in line, line
    assert store.names("cert") == []


def test_import_expired_needs_force(store, pki):
    line = store.fail("cert", "import", pki / "expired.pem", "--key",
                      pki / "expired.key", "--name", "old", code=1)
    assert "expired" in line.lower(), line
    assert store.names("cert") == []
    store.ok("cert", "import", pki / "expired.pem", "--key",
             pki / "expired.key", "--name", "old", "--force")
    info = store.show("cert", "old")
    assert info["days_left"] < 0, info
    assert info["not_after"].startswith("2021-01-01T"), info


def test_import_self_signed_needs_force(store, tmp_path, pki):
    # Self-signed S/MIME certificate (made by openssl).
    ss_key = tmp_path / "ss.key"
    ss = tmp_path / "ss.pem"
    ext = tmp_path / "ss.cnf"
    ext.write_text(EE_EXT.format(
        ku="digitalSignature, nonRepudiation, keyAgreement",
        eku="emailProtection", san="email:self@example.com")
        + "[ req ]\ndistinguished_name = dn\n[ dn ]\n")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", ss_key,
            "-out", ss, "-days", "30", "-subj", "/CN=Self Signed",
            "-config", ext, "-extensions", "smime")
    line = store.fail("cert", "import", ss, "--key", ss_key, "--name", "ss",
                      code=1)
    assert re.search(r"self.?signed", line, re.I), line
    store.ok("cert", "import", ss, "--key", ss_key, "--name", "ss", "--force")
    info = store.show("cert", "ss")
    assert info["self_signed"] is True and info["source"] == "imported"
    assert store.names("cert") == ["ss"]


def test_import_weak_key_needs_force(store, tmp_path, pki):
    """RSA-1024, issued by the test CA: only the weak key is wrong."""
    wk = tmp_path / "weak.key"
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt",
            "rsa_keygen_bits:1024", "-out", wk)
    req = tmp_path / "weak.csr"
    openssl("req", "-new", "-key", wk, "-subj", "/CN=Weak Key", "-out", req)
    cert = ca_sign(pki, req, tmp_path / "weak.pem", "email:weak@example.com",
                   tmp_path)
    line = store.fail("cert", "import", cert, "--key", wk, "--name", "weak",
                      code=1)
    assert re.search(r"weak|1024|short|small", line, re.I), line
    store.ok("cert", "import", cert, "--key", wk, "--name", "weak", "--force")
    assert store.show("cert", "weak")["key_type"] == "rsa:1024"
    assert store.names("cert") == ["weak"]


def test_import_unreadable_input_is_usage_error(store, tmp_path, pki):
    store.fail("cert", "import", tmp_path / "missing.pem", code=2)
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"this is not a certificate\n")
    store.fail("cert", "import", junk, "--name", "junk", code=2)
    store.fail("cert", "import", pki / "alice.pem", "--key", junk,
               "--name", "a", code=2)
    assert store.names("cert") == []
