"""Harvested public keys on the command line (issue 6): `smimegate key
harvested list|show|promote|delete`, and `add`, the manual harvest, which
harvests a certificate file exactly as the gateway harvests a sender's
certificate: what is harvested and every reason why not, updated
certificates, added keys winning, promotion to a public key, deletion,
and the store-wide conventions (exit codes, one reason line, --json).

Every test has its own store in tmp_path and passes --store (after
`key harvested SUB`).
"""

import hashlib
import re

import pytest

from store_util import Store, pem_blocks

NAME = re.compile(r"^h-[A-Za-z0-9._@+-]+-[0-9a-f]{8}$")


class HStore(Store):
    """A Store whose `key harvested SUB` commands get --store after SUB."""

    def argv(self, args, keyfile=None):
        args = [str(a) for a in args]
        if args[:2] == ["key", "harvested"] and len(args) > 2:
            extra = ["--store", str(self.path)]
            if keyfile is not None:
                extra += ["--keyfile", str(keyfile)]
            return args[:3] + extra + args[3:]
        return super().argv(args, keyfile)

    def h(self, *args, **kw):
        return self.ok("key", "harvested", *args, **kw).decode()

    def hfail(self, *args, **kw):
        return self.fail("key", "harvested", *args, **kw)

    def harvested(self):
        v = self.json("key", "harvested", "list", "--json")
        assert isinstance(v, list), v
        return v


@pytest.fixture
def hs(run, tmp_path):
    d = tmp_path / "hstore"
    d.mkdir()
    s = HStore(run, d)
    s.init()
    return s


@pytest.fixture
def bare_hs(run, tmp_path):
    d = tmp_path / "bare"
    d.mkdir()
    return HStore(run, d)


def der_of(path):
    return pem_blocks(path.read_bytes())[0]


def sha256_of(path):
    return hashlib.sha256(der_of(path)).hexdigest()


def added_name(out):
    """The row name of an `add` line: `RESULT NAME: addresses (subject)`."""
    m = re.match(r"^(new|updated|same) (\S+): ", out)
    assert m, f"not an add result line: {out!r}"
    assert NAME.match(m.group(2)), m.group(2)
    return m.group(2)


# ---------------------------------------------------------------------------
# add, list, show


def test_add_list_show(hs, pki):
    out = hs.h("add", pki / "alice-full.pem", "--source",
               "qid=ABC from=alice@example.com")
    # the chain's CA is not harvested, nor reported
    assert len(out.splitlines()) == 1, out
    assert out.startswith("new h-alice@example.com-" + sha256_of(
        pki / "alice.pem")[:8] + ": alice@example.com (CN=Alice"), out
    name = added_name(out)

    v = hs.harvested()
    assert [e["name"] for e in v] == [name]
    e = v[0]
    assert e["fingerprint"] == sha256_of(pki / "alice.pem")
    assert e["emails"] == ["alice@example.com"] and e["domains"] == []
    assert e["source"] == "harvested"
    assert e["harvest_source"] == "qid=ABC from=alice@example.com"
    assert e["size"] == len(der_of(pki / "alice.pem"))
    assert e["not_after"] == "2045-12-31T23:59:59Z"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", e["harvested_at"])
    assert e["last_used"] == e["harvested_at"]
    assert "encrypt" in e["purposes"] and e["ca"] is False
    assert "CN=Alice" in e["subject"]

    shown = hs.json("key", "harvested", "show", name, "--json")
    assert shown == e

    text = hs.h("list")
    assert name in text and "alice@example.com" in text
    assert "CN=Alice" in text and "qid=ABC from=alice@example.com" in text
    assert "2045-12-31" in text
    assert re.search(r"^1 harvested certificate, \d+ bytes$", text, re.M), \
        text
    show = hs.h("show", name)
    for field in ("name:", "fingerprint: sha256:", "harvested:", "from:",
                  "last used:", "size:", "encryption:  yes"):
        assert field in show, (field, show)
    assert "qid=ABC from=alice@example.com" in show

    # harvested keys are not added keys
    assert hs.names("key") == []
    hs.fail("key", "show", name, code=1, status="not-found")


def test_add_same_again_and_from_stdin(hs, pki):
    name = added_name(hs.h("add", pki / "dave.pem"))
    out = hs.h("add", "-", input=(pki / "dave.pem").read_bytes())
    assert out.startswith(f"same {name}: dave@example.net"), out
    v = hs.harvested()
    assert len(v) == 1
    assert v[0]["harvest_source"].startswith("manual: ")


def test_source_kept_printable(hs, pki):
    name = added_name(hs.h("add", pki / "alice.pem", "--source",
                           "qid=1\nfrom=x\x7f" + "y" * 600))
    src = hs.json("key", "harvested", "show", name, "--json")[
        "harvest_source"]
    assert src.startswith("qid=1?from=x?y")
    assert len(src) == 512


# ---------------------------------------------------------------------------
# what is not harvested, and the options that allow it


def self_signed(hs, tmp_path):
    """A self-signed certificate for self@example.net (`cert create` in
    another store, exported as PEM)."""
    other = Store(hs.run, tmp_path, "other.db")
    other.ok("cert", "create", "--name", "p", "--cn", "Partner",
             "--san-email", "self@example.net", "--key", "rsa:2048")
    pem = tmp_path / "self.pem"
    pem.write_bytes(other.ok("cert", "export", "p", "--pem"))
    assert len(pem_blocks(pem.read_bytes())) == 1
    return pem


@pytest.mark.parametrize("cert, status, reason, option", [
    ("expired", "expired", "not harvested: expired (--allow-expired "
     "harvests it anyway)", "--allow-expired"),
    ("SELF", "policy", "not harvested: self-signed (--allow-self-signed "
     "harvests it anyway)", "--allow-self-signed"),
    ("root", "key-usage", "not harvested: a CA certificate", None),
    ("inter", "key-usage", "not harvested: a CA certificate", None),
    ("nokeyenc", "key-usage", "not harvested: not for encryption", None),
    ("noeku", "key-usage", "not harvested: not for encryption", None),
])
def test_not_harvested(hs, pki, tmp_path, cert, status, reason, option):
    path = self_signed(hs, tmp_path) if cert == "SELF" else \
        pki / f"{cert}.pem"
    line = hs.hfail("add", path, code=1, status=status)
    assert line.startswith(f"smimegate: key harvested add: {status}: "
                           f"{reason}"), line
    assert hs.harvested() == []
    everything = ("--allow-expired", "--allow-self-signed",
                  "--store-updated")
    if option is None:
        # nothing overrides it
        hs.hfail("add", path, *everything, code=1, status=status)
        assert hs.harvested() == []
    else:
        added_name(hs.h("add", path, option))
        assert len(hs.harvested()) == 1


def test_updated_certificates(hs, pki):
    first = added_name(hs.h("add", pki / "bob.pem"))
    # a newer certificate for the same address: not stored by default
    line = hs.hfail("add", pki / "bob-renewed.pem", code=1, status="policy")
    assert "updated certificate not stored (--store-updated stores it)" \
        in line, line
    assert [e["name"] for e in hs.harvested()] == [first]
    out = hs.h("add", pki / "bob-renewed.pem", "--store-updated")
    assert out.startswith("updated "), out
    second = added_name(out)
    assert second != first
    # both are kept; the old one again is the same one
    assert sorted(e["name"] for e in hs.harvested()) == sorted(
        [first, second])
    assert hs.h("add", pki / "bob.pem").startswith(f"same {first}:")
    fprs = {e["fingerprint"] for e in hs.harvested()}
    assert fprs == {sha256_of(pki / "bob.pem"),
                    sha256_of(pki / "bob-renewed.pem")}


def test_older_than_the_stored_one(hs, pki):
    newer = added_name(hs.h("add", pki / "bob-renewed.pem"))
    line = hs.hfail("add", pki / "bob.pem", "--store-updated", code=1,
                    status="exists")
    assert f"a newer certificate is stored for bob@example.org ({newer})" \
        in line, line
    assert len(hs.harvested()) == 1


def test_added_key_wins(hs, pki):
    hs.ok("key", "add", "bob", pki / "bob.pem")
    line = hs.hfail("add", pki / "bob-renewed.pem", "--store-updated",
                    code=1, status="exists")
    assert "an added key exists for bob@example.org (bob)" in line, line
    assert hs.harvested() == []
    # once the added key is gone, it is harvested
    hs.ok("key", "delete", "bob")
    added_name(hs.h("add", pki / "bob-renewed.pem"))


# ---------------------------------------------------------------------------
# promote, delete


def test_promote(hs, pki):
    name = added_name(hs.h("add", pki / "dave.pem"))
    other = added_name(hs.h("add", pki / "carol-ec.pem"))
    hs.ok("key", "add", "taken", pki / "alice.pem")
    hs.hfail("promote", name, "--name", "taken", code=1, status="exists")
    hs.hfail("promote", name, "--name", "bad name", code=2, status="usage")
    hs.hfail("promote", "nothing", code=1, status="not-found")
    assert hs.h("promote", name, "--name", "dave") == \
        f"promoted {name} to the public key dave\n"
    assert [e["name"] for e in hs.harvested()] == [other]
    dave = hs.show("key", "dave")
    assert dave["fingerprint"] == sha256_of(pki / "dave.pem")
    assert dave["emails"] == ["dave@example.net"]
    assert dave["source"] == "harvested"
    hs.hfail("promote", name, code=1, status="not-found")
    # without --name it keeps its name
    hs.h("promote", other)
    assert hs.names("key") == sorted(["dave", "taken", other])
    assert hs.harvested() == []
    # a public key now: harvesting it again finds the added key
    line = hs.hfail("add", pki / "dave.pem", code=1, status="exists")
    assert "an added key exists for dave@example.net (dave)" in line


def test_delete(hs, pki):
    name = added_name(hs.h("add", pki / "alice.pem"))
    hs.fail("key", "delete", name, code=1, status="not-found")
    assert hs.h("delete", name) == f"deleted {name}\n"
    assert hs.harvested() == []
    hs.hfail("delete", name, code=1, status="not-found")
    hs.hfail("show", name, code=1, status="not-found")
    assert hs.h("list") == "(none)\n"
    added_name(hs.h("add", pki / "alice.pem"))


# ---------------------------------------------------------------------------
# the command line's conventions


def test_usage_errors(hs, pki):
    hs.fail("key", "harvested", "frobnicate", code=2, status="usage")
    hs.fail("key", "harvested", code=2, status="usage")
    hs.hfail("list", "extra", code=2, status="usage")
    hs.hfail("list", "--name", "x", code=2, status="usage")
    hs.hfail("show", code=2, status="usage")
    hs.hfail("delete", "a", "b", code=2, status="usage")
    hs.hfail("promote", code=2, status="usage")
    hs.hfail("delete", "x", "--json", code=2, status="usage")
    hs.hfail("add", code=2, status="usage")
    hs.hfail("add", pki / "alice.pem", "--frobnicate", code=2,
             status="usage")
    hs.hfail("add", pki / "missing.pem", code=2)
    out = hs.h("--help")
    assert "key harvested list" in out and "--store-updated" in out
    assert hs.harvested() == []


@pytest.mark.parametrize("args", [
    ("list",), ("list", "--json"), ("show", "x"), ("promote", "x"),
    ("delete", "x"),
])
def test_reading_commands_on_missing_store(bare_hs, args):
    line = bare_hs.hfail(*args, code=1, status="not-found")
    assert "smimegate store init" in line, line
    assert not bare_hs.path.exists()


def test_add_creates_the_store(bare_hs, pki):
    proc = bare_hs.cmd("key", "harvested", "add", pki / "alice.pem")
    assert proc.returncode == 0, proc.stderr.decode()
    assert bare_hs.path.exists() and bare_hs.keyfile.exists()
    assert len(bare_hs.harvested()) == 1


def test_no_private_key_printed(hs, pki):
    hs.h("add", pki / "alice.pem")
    for args in (("list",), ("list", "--json")):
        assert b"PRIVATE KEY" not in hs.ok("key", "harvested", *args)
