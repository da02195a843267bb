"""PKCS#12 in and out of the key store.

- cert export --p12 (modern: AES-256-CBC / PBKDF2; --legacy: 3DES and a
  SHA-1 MAC) opens with plain `openssl pkcs12 -info` and imports into NSS
  (pk12util -i), with the same certificate and key;
- cert import takes p12 files from `openssl pkcs12 -export` (default and
  -legacy) and from `pk12util -o`; a store's export imports into another
  store; a wrong passphrase is refused (exit 1) with a clear reason.
"""

import hashlib
import re

import pytest

from nss_util import NssDb, run_tool
from smime_util import openssl
from store_util import (PASSPHRASE, Store, export_identity, pem_blocks,
                        write_passfile)


def p12_info(p12, passfile):
    """`openssl pkcs12 -info -nokeys` without -legacy: the algorithm lines
    (printed on stderr)."""
    proc = openssl("pkcs12", "-info", "-nokeys", "-noout", "-in", p12,
                   "-passin", f"file:{passfile}", check=False)
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0, (
        f"openssl pkcs12 -info (OpenSSL 3 defaults, no -legacy) cannot open "
        f"the exported PKCS#12:\n{err}")
    return err


def key_text(path, passfile=None):
    """The private key's `openssl pkey -text` (identical for one key)."""
    if passfile is None:
        return openssl("pkey", "-in", path, "-text", "-noout").stdout
    pem = openssl("pkcs12", "-in", path, "-nocerts", "-nodes", "-legacy",
                  "-passin", f"file:{passfile}").stdout
    return openssl("pkey", "-text", "-noout", input=pem).stdout


def der_sha256(pem_path):
    return hashlib.sha256(pem_blocks(pem_path.read_bytes())[0]).hexdigest()


@pytest.mark.parametrize("legacy", [False, True], ids=["modern", "legacy"])
def test_export_p12_opens_in_openssl_and_nss(store, tmp_path, legacy):
    store.ok("cert", "create", "--name", "exp", "--cn", "Export Test",
             "--san-email", "export@example.com", "--key", "rsa:2048")
    ident = export_identity(store, "exp", tmp_path / "id", legacy=legacy)
    info = p12_info(ident.p12, ident.passfile)
    if legacy:
        assert "pbeWithSHA1And3-KeyTripleDES-CBC" in info, info
        assert re.search(r"^MAC: sha1\b", info, re.M), info
        assert "AES" not in info and "PBES2" not in info, info
        assert "RC2" not in info, info
    else:
        assert "AES-256-CBC" in info and "PBKDF2" in info, info
        assert "Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC" in info, info
        assert re.search(r"^MAC: sha256\b", info, re.M), info
        assert "TripleDES" not in info and "RC2" not in info, info
    assert "Certificate bag" in info

    # The certificate in the p12 is the store's certificate.
    certs = openssl("pkcs12", "-in", ident.p12, "-nokeys", "-passin",
                    f"file:{ident.passfile}", "-legacy").stdout
    assert pem_blocks(certs)[0] == ident.certs_der[0]
    # The key in the p12 belongs to it.
    assert openssl("x509", "-in", ident.cert, "-pubkey", "-noout").stdout == \
        openssl("pkey", "-in", ident.key, "-pubout").stdout

    with NssDb() as db:
        run_tool(["pk12util", "-i", ident.p12, "-d", db.spec,
                  "-w", ident.passfile, "-K", ""])
        keys = run_tool(["certutil", "-K", "-d", db.spec]).stdout.decode()
        assert re.search(r"<\s*\d+\s*>\s+rsa", keys), keys
        listing = db.list_certs()
        assert "u,u,u" in listing, listing
        nick = [ln.rsplit(None, 1)[0].strip() for ln in listing.splitlines()
                if ln.rstrip().endswith("u,u,u")][0]
        pem = run_tool(["certutil", "-L", "-d", db.spec, "-n", nick,
                        "-a"]).stdout
        assert pem_blocks(pem)[0] == ident.certs_der[0]


@pytest.mark.parametrize("legacy", [False, True], ids=["modern", "legacy"])
def test_p12_round_trip_between_stores(store, run, tmp_path, legacy):
    store.ok("cert", "create", "--name", "rt", "--cn", "Round Trip",
             "--san-email", "rt@example.com", "--key", "ec:p384")
    ident = export_identity(store, "rt", tmp_path / "id", legacy=legacy)
    d2 = tmp_path / "second"
    d2.mkdir()
    other = Store(run, d2)
    other.init()
    other.ok("cert", "import", ident.p12, "--pass-file", ident.passfile,
             "--name", "rt2", "--force")
    a, b = store.show("cert", "rt"), other.show("cert", "rt2")
    assert b["fingerprint"] == a["fingerprint"]
    assert b["key_type"] == "ec:p384" and b["source"] == "imported"
    assert b["pending"] is False
    back = export_identity(other, "rt2", tmp_path / "id2")
    assert key_text(back.key) == key_text(ident.key), "the key changed"


@pytest.mark.parametrize("legacy", [False, True], ids=["modern", "legacy"])
def test_import_openssl_p12(store, tmp_path, pki, legacy):
    p12 = pki / ("alice-legacy.p12" if legacy else "alice.p12")
    store.ok("cert", "import", p12, "--pass-file", pki / "pass.txt",
             "--name", "alice")
    info = store.show("cert", "alice")
    assert info["fingerprint"] == der_sha256(pki / "alice.pem")
    assert info["source"] == "imported" and info["pending"] is False
    assert info["emails"] == ["alice@example.com"]
    assert "CN=smimegate Test Intermediate CA" in info["issuer"]
    ident = export_identity(store, "alice", tmp_path / "id")
    assert key_text(ident.key) == key_text(pki / "alice.key")
    # The chain in the p12 (inter) comes out again.
    inter = pem_blocks((pki / "inter.pem").read_bytes())[0]
    assert inter in ident.certs_der[1:], "chain from the PKCS#12 was lost"


def test_import_pk12util_export(store, tmp_path, pki):
    passfile = write_passfile(tmp_path)
    out = tmp_path / "from-nss.p12"
    with NssDb() as db:
        db.import_p12(pki / "alice.p12", pki / "pass.txt", "alice")
        run_tool(["pk12util", "-o", out, "-n", "alice", "-d", db.spec,
                  "-w", passfile, "-K", ""])
    store.ok("cert", "import", out, "--pass-file", passfile, "--name", "nss")
    info = store.show("cert", "nss")
    assert info["fingerprint"] == der_sha256(pki / "alice.pem")
    ident = export_identity(store, "nss", tmp_path / "id")
    assert key_text(ident.key) == key_text(pki / "alice.key")


def test_import_p12_wrong_passphrase(store, tmp_path, pki):
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not the " + PASSPHRASE)
    for p12 in ("alice.p12", "alice-legacy.p12"):
        line = store.fail("cert", "import", pki / p12, "--pass-file", wrong,
                          "--name", "alice", code=1)
        assert re.search(r"pass(word|phrase)|\bMAC\b", line, re.I), (
            f"the reason does not say the passphrase is wrong: {line!r}")
        assert "PRIVATE KEY" not in line
    assert store.names("cert") == []


def test_export_unknown_name_and_missing_options(store, tmp_path):
    passfile = write_passfile(tmp_path)
    line = store.fail("cert", "export", "nobody", "--p12",
                      tmp_path / "x.p12", "--pass-file", passfile, code=1,
                      status="not-found")
    assert "nobody" in line
    assert not (tmp_path / "x.p12").exists()
    store.fail("cert", "export", "nobody", "--pem", code=1,
               status="not-found")
    store.ok("cert", "create", "--name", "e", "--cn", "E", "--key", "ec:p256")
    store.fail("cert", "export", "e", code=2)
