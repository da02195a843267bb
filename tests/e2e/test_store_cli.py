"""The key store and its command line: `store init`, file modes, creating
the store on first write, partners' public keys (`key ...`), trust anchors
(`ca ...`), listings, and that no private key is ever stored or printed in
clear.

Every test has its own store in tmp_path and passes --store.
"""

import base64
import hashlib
import re
import stat

import pytest

from smime_util import openssl
from store_util import export_identity, pem_blocks


def mode(p):
    return stat.S_IMODE(p.stat().st_mode)


def der_of(path):
    return pem_blocks(path.read_bytes())[0]


def sha256_of(path):
    return hashlib.sha256(der_of(path)).hexdigest()


# ---------------------------------------------------------------------------
# store init, file modes, first write, missing store


def test_store_init_modes_and_twice(bare_store):
    s = bare_store
    s.init()
    assert s.path.is_file() and s.keyfile.is_file()
    assert mode(s.path) == 0o600, oct(mode(s.path))
    assert mode(s.keyfile) == 0o400, oct(mode(s.keyfile))
    key_before = s.keyfile.read_bytes()
    assert len(key_before) >= 32
    line = s.fail("store", "init", code=1)
    assert "exists" in line, line
    assert s.keyfile.read_bytes() == key_before, "init twice changed the key"
    assert mode(s.path) == 0o600 and mode(s.keyfile) == 0o400


def test_store_init_custom_keyfile(bare_store, tmp_path):
    s = bare_store
    kf = tmp_path / "elsewhere" / "master.key"
    kf.parent.mkdir()
    s.init(keyfile=kf)
    assert mode(s.path) == 0o600
    assert mode(kf) == 0o400
    assert not s.keyfile.exists(), "the default key file was written too"
    s.ok("cert", "create", "--name", "k", "--cn", "K", "--key", "ec:p256",
         keyfile=kf)
    names = [e["name"] for e in s.json("cert", "list", "--json", keyfile=kf)]
    assert names == ["k"]
    s.fail("store", "init", keyfile=kf, code=1)


def test_writing_command_creates_the_store(bare_store):
    s = bare_store
    proc = s.cmd("cert", "create", "--name", "first", "--cn", "First",
                 "--key", "ec:p256")
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr.strip(), "no note on stderr that the store was created"
    assert mode(s.path) == 0o600 and mode(s.keyfile) == 0o400
    assert s.names("cert") == ["first"]


@pytest.mark.parametrize("args", [
    ("cert", "list"), ("cert", "list", "--json"), ("cert", "show", "x"),
    ("key", "list"), ("key", "show", "x"), ("ca", "list"),
    ("key", "export", "OUT"), ("cert", "delete", "x"),
])
def test_reading_command_on_missing_store(bare_store, tmp_path, args):
    args = [tmp_path / "out.pem" if a == "OUT" else a for a in args]
    line = bare_store.fail(*args, code=1, status="not-found")
    assert "smimegate store init" in line, line
    assert not bare_store.path.exists(), "a reading command created the store"
    assert not bare_store.keyfile.exists()


def test_usage_errors(store, tmp_path):
    store.fail("cert", "frobnicate", code=2)
    store.fail("cert", "create", "--name", "x", "--cn", "X",
               "--key", "dsa:1024", code=2)
    store.fail("cert", "create", "--name", "x", "--cn", "X", "--days",
               "soon", code=2)
    store.fail("key", "add", "onlyname", code=2)
    store.fail("ca", "trust-system", "maybe", code=2)
    assert store.names("cert") == []


# ---------------------------------------------------------------------------
# key add / import / export / list / show / delete


def test_key_round_trip(store, tmp_path, pki):
    cer = tmp_path / "dave.cer"
    openssl("x509", "-in", pki / "dave.pem", "-outform", "DER", "-out", cer)
    store.ok("key", "add", "bob", pki / "bob.pem")
    store.ok("key", "add", "dave", cer)
    store.ok("key", "add", "carol", "-",
             input=(pki / "carol-ec.pem").read_bytes())
    assert store.names("key") == ["bob", "carol", "dave"]

    bob = store.show("key", "bob")
    assert bob["name"] == "bob"
    assert bob["fingerprint"] == sha256_of(pki / "bob.pem")
    assert bob["emails"] == ["bob@example.org"]
    assert bob["key_type"] == "rsa:2048"
    assert sorted(bob["purposes"]) == ["encrypt", "sign"]
    assert bob["source"] == "added"
    assert bob["self_signed"] is False and bob["pending"] is False
    assert "CN=Bob" in bob["subject"]
    assert "CN=smimegate Test Intermediate CA" in bob["issuer"]
    carol = store.show("key", "carol")
    assert carol["key_type"] == "ec:p256"
    assert carol["fingerprint"] == sha256_of(pki / "carol-ec.pem")
    assert store.show("key", "dave")["fingerprint"] == \
        sha256_of(pki / "dave.pem")
    listed = {e["name"]: e for e in store.entries("key")}
    assert listed["bob"]["fingerprint"] == bob["fingerprint"]

    # Same name again; unreadable input.
    assert "exists" in store.fail("key", "add", "bob", pki / "dave.pem",
                                  code=1)
    junk = tmp_path / "junk.cer"
    junk.write_bytes(b"\x30\x03\x02\x01\x00garbage")
    store.fail("key", "add", "junk", junk, code=2)
    store.fail("key", "add", "none", tmp_path / "missing.pem", code=2)

    out = tmp_path / "all.pem"
    store.ok("key", "export", out)
    data = out.read_bytes()
    assert b"PRIVATE KEY" not in data
    assert sorted(pem_blocks(data)) == sorted(
        der_of(pki / f"{n}.pem") for n in ("bob", "carol-ec", "dave"))

    store.ok("key", "delete", "dave")
    assert store.names("key") == ["bob", "carol"]
    store.fail("key", "show", "dave", code=1, status="not-found")
    store.fail("key", "delete", "dave", code=1, status="not-found")
    store.ok("key", "export", out)
    assert len(pem_blocks(out.read_bytes())) == 2


def test_key_import_names_from_first_email(store, tmp_path, pki):
    bundle = tmp_path / "partners.pem"
    bundle.write_bytes(b"".join((pki / f"{n}.pem").read_bytes()
                                for n in ("alice", "dave", "carol-ec")))
    store.ok("key", "import", bundle)
    entries = store.entries("key")
    assert len(entries) == 3, entries
    by_fpr = {e["fingerprint"]: e for e in entries}
    for n, email in (("alice", "alice@example.com"),
                     ("dave", "dave@example.net"),
                     ("carol-ec", "carol@example.com")):
        e = by_fpr.get(sha256_of(pki / f"{n}.pem"))
        assert e is not None, f"{n} not imported: {entries}"
        assert email.split("@")[0] in e["name"], (
            f"name {e['name']!r} not derived from {email}")
        assert e["emails"] == [email]
        assert store.show("key", e["name"])["fingerprint"] == e["fingerprint"]
    out = tmp_path / "export.pem"
    store.ok("key", "export", out)
    assert sorted(pem_blocks(out.read_bytes())) == sorted(
        pem_blocks(bundle.read_bytes()))


# ---------------------------------------------------------------------------
# ca import / list / delete / trust-system


def test_ca_import_list_delete(store, tmp_path, pki):
    bundle = tmp_path / "anchors.pem"
    bundle.write_bytes((pki / "root.pem").read_bytes() +
                       (pki / "rogue-root.pem").read_bytes())
    store.ok("ca", "import", bundle)
    cas = store.entries("ca")
    assert len(cas) == 2, cas
    by_fpr = {e["fingerprint"]: e for e in cas}
    root = by_fpr[sha256_of(pki / "root.pem")]
    rogue = by_fpr[sha256_of(pki / "rogue-root.pem")]
    assert "CN=smimegate Test Root CA" in root["subject"]
    assert "CN=Rogue Root CA" in rogue["subject"]
    assert root["self_signed"] is True
    text = store.ok("ca", "list").decode()
    assert root["name"] in text and rogue["name"] in text

    store.ok("ca", "delete", rogue["name"])
    assert [e["fingerprint"] for e in store.entries("ca")] == \
        [root["fingerprint"]]
    store.fail("ca", "delete", rogue["name"], code=1, status="not-found")
    # Anchors are not partners' keys and not our certificates.
    assert store.entries("key") == [] and store.entries("cert") == []


def system_trust_state(store):
    """on/off as `ca list` (text or JSON) or `ca trust-system` reports it."""
    found = []
    data = store.json("ca", "list", "--json")
    for e in data:
        if isinstance(e, dict) and "system" in str(e.get("source", "")) + \
                str(e.get("name", "")).lower():
            found.append("on")
            break
    text = store.ok("ca", "list").decode()
    for ln in text.splitlines():
        m = re.search(r"system.*\b(on|off|yes|no|enabled|disabled|true|"
                      r"false)\b", ln, re.I)
        if m:
            found.append("on" if m.group(1).lower() in
                         ("on", "yes", "enabled", "true") else "off")
    return found


def test_ca_trust_system_on_off(store, pki):
    store.ok("ca", "import", pki / "root.pem")
    store.ok("ca", "trust-system", "on")
    on = system_trust_state(store)
    store.ok("ca", "trust-system", "off")
    off = system_trust_state(store)
    assert "on" in on, f"trust-system on not reflected in ca list: {on}"
    assert "on" not in off and "off" in off, (
        f"trust-system off not reflected in ca list: {off}")
    # The store's own anchor is unaffected.
    assert sha256_of(pki / "root.pem") in [
        e["fingerprint"] for e in store.entries("ca")]


# ---------------------------------------------------------------------------
# No private key in clear: neither in the database nor in any output


def test_no_private_key_in_clear(store, tmp_path, pki):
    store.ok("cert", "create", "--name", "secret", "--cn", "Secret Key",
             "--san-email", "secret@example.com", "--key", "rsa:2048")
    store.ok("cert", "import", pki / "alice.p12", "--pass-file",
             pki / "pass.txt", "--name", "alice")
    ident = export_identity(store, "secret", tmp_path / "id")
    alice = export_identity(store, "alice", tmp_path / "id2")

    outputs = b"".join(store.ok(*a) for a in (
        ("cert", "list"), ("cert", "list", "--json"),
        ("cert", "show", "secret"), ("cert", "show", "secret", "--json"),
        ("cert", "show", "alice", "--json"),
        ("cert", "export", "secret", "--pem")))
    assert b"PRIVATE KEY" not in outputs

    db = store.db_bytes()
    assert db, "no database file"
    for who, key_path in (("created", ident.key), ("imported", alice.key),
                          ("imported", pki / "alice.key")):
        pkcs8 = openssl("pkey", "-in", key_path, "-outform", "DER").stdout
        trad = openssl("pkey", "-in", key_path, "-outform", "DER",
                       "-traditional").stdout
        # Public parts (modulus, exponent) are in the certificate too:
        # only windows that are not in any certificate count.
        public = b"".join(ident.certs_der + alice.certs_der)
        for der in (pkcs8, trad):
            assert der not in db, f"{who} key's DER is in the database"
            secret_windows = [der[i:i + 32] for i in range(len(der) - 31)
                              if der[i:i + 32] not in public]
            assert len(secret_windows) > len(der) // 2
            leaks = [i for i, w in enumerate(secret_windows) if w in db]
            assert not leaks, (
                f"{len(leaks)} 32-byte windows of the {who} private key's "
                f"DER are in the database files")
        pem = openssl("pkey", "-in", key_path).stdout
        for ln in pem.splitlines():
            if ln.startswith(b"-----") or len(ln) < 32:
                continue
            assert ln not in db, (
                f"a PEM line of the {who} private key is in the database")
        b64 = base64.b64encode(pkcs8)
        assert b64[:64] not in db


def test_every_san_name_is_indexed(store, smimegate, tmp_path):
    """Lookups find a certificate by any of its addresses and domains, not
    only the first (a bound-parameter bug once indexed the first alone)."""
    import sqlite3
    store.ok("cert", "create", "--name", "multi", "--cn", "Multi",
             "--san-email", "a@x.example,b@y.example,c@z.example",
             "--san-domain", "d.example,*.e.example")
    db = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True)
    names = sorted(v for (v,) in db.execute("SELECT value FROM cert_names"))
    db.close()
    assert names == sorted(["a@x.example", "b@y.example", "c@z.example",
                            "d.example", "*.e.example"]), names
