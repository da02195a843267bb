"""The libraries opened on first use (src/lib/dl.h, docs/architecture.md
"Dependencies, and how they are loaded"): the binary links libcrypto only, a
one-shot command of a plain message never maps GMime, and a library that
cannot be loaded is a clear error, not a crash, and only for what needs it.
"""

import os
import re
import subprocess

from smime_util import assert_reason, check_ok, msg_8bit, msg_attachment

LAZY = ("libssl", "libgmime", "libglib", "libgobject", "libgio", "libsqlite3",
        "libevent", "libcrypt.", "libresolv", "libldap", "libgpgme")


def soname(pkg, filename):
    libdir = subprocess.run(["pkg-config", "--variable=libdir", pkg],
                            capture_output=True, text=True,
                            check=True).stdout.strip()
    out = subprocess.run(["objdump", "-p", f"{libdir}/{filename}"],
                         capture_output=True, text=True, check=True).stdout
    return re.search(r"^\s*SONAME\s+(\S+)", out, re.M).group(1)


def loaded(proc):
    """The shared objects the process mapped (LD_DEBUG=files)."""
    return set(re.findall(r"file=(\S+) \[0\];  (?:needed|dynamically)",
                          proc.stderr.decode(errors="replace")))


def broken(tmp_path, *names):
    """LD_LIBRARY_PATH with a file of each NAME that is not a library."""
    d = tmp_path / "broken-libs"
    d.mkdir(exist_ok=True)
    for n in names:
        (d / n).write_bytes(b"not a shared object\n")
    return {"LD_LIBRARY_PATH": str(d)}


def test_binary_links_libcrypto_and_libc_only(smimegate):
    out = subprocess.run(["readelf", "-d", smimegate], capture_output=True,
                         text=True, check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(\S+)\]", out)
    assert any(n.startswith("libcrypto") for n in needed), needed
    assert [n for n in needed if n.startswith(LAZY)] == [], needed


def test_one_shot_commands_of_a_plain_message_do_not_load_gmime(run, pki,
                                                                 smime):
    """sign, encrypt, verify and decrypt of a 7-bit multipart message with
    plain Content-Type and From fields: nothing but libcrypto is mapped, and
    each result is right (openssl cms verifies and decrypts them too)."""
    msg = msg_attachment()
    env = {"LD_DEBUG": "files"}
    p = pki
    sign = run(["sign", "--signer", p / "alice.pem", "--key",
                p / "alice.key", "--certfile", p / "inter.pem"], input=msg,
               env=env)
    signed = check_ok(sign)
    enc = run(["encrypt", "--recipient", p / "bob.pem"], input=signed,
              env=env)
    encrypted = check_ok(enc)
    dec = run(["decrypt", "--cert", p / "bob.pem", "--key", p / "bob.key"],
              input=encrypted, env=env)
    ver = run(["verify", "--trust", p / "trust.pem", "--json"],
              input=check_ok(dec), env=env)
    check_ok(ver)
    assert b'"from_match": true' in ver.stdout
    for proc in (sign, enc, dec, ver):
        libs = loaded(proc)
        assert any(lib.startswith("libcrypto") for lib in libs), libs
        assert [lib for lib in libs if lib.startswith(LAZY)] == [], libs
    # the same bytes through openssl: the fast path changed nothing
    ossl = subprocess.run(["openssl", "cms", "-verify", "-CAfile",
                           str(p / "trust.pem"), "-out", "/dev/null"],
                          input=signed, capture_output=True)
    assert ossl.returncode == 0, ossl.stderr


def test_gmime_is_loaded_when_a_message_needs_it(run, pki, smime):
    """The control for the test above: an 8-bit body must be re-encoded,
    an unusual Content-Type takes a real parser; both map GMime, and the
    results are right."""
    env = {"LD_DEBUG": "files"}
    sign = run(["sign", "--signer", pki / "alice.pem", "--key",
                pki / "alice.key"], input=msg_8bit(), env=env)
    check_ok(sign)
    assert any(lib.startswith("libgmime") for lib in loaded(sign))
    assert b"Content-Transfer-Encoding: quoted-printable" in sign.stdout

    signed = smime.sign(msg_attachment())
    odd = signed.replace(b"Content-Type: multipart/signed;",
                         b"Content-Type: multipart/signed (S/MIME);", 1)
    assert odd != signed
    ver = run(["verify", "--trust", pki / "trust.pem"], input=odd, env=env)
    check_ok(ver)
    assert any(lib.startswith("libgmime") for lib in loaded(ver))


def test_a_gmime_that_cannot_be_loaded(run, pki, smime, tmp_path):
    """Only what needs GMime fails, as a temporary failure (exit 2) whose
    one-line reason names the file; a plain message is still signed."""
    env = broken(tmp_path, soname("gmime-3.0", "libgmime-3.0.so"))
    ok = run(["sign", "--signer", pki / "alice.pem", "--key",
              pki / "alice.key"], input=msg_attachment(), env=env)
    check_ok(ok)
    bad = run(["sign", "--signer", pki / "alice.pem", "--key",
               pki / "alice.key"], input=msg_8bit(), env=env)
    assert bad.returncode == 2, bad.stderr
    reason = assert_reason(bad)
    assert "GMime cannot be used: cannot load libgmime-3.0.so" in reason, \
        reason

    signed = smime.sign(msg_attachment())
    odd = signed.replace(b"Content-Type: multipart/signed;",
                         b"Content-Type: multipart/signed (S/MIME);", 1)
    ver = run(["verify", "--trust", pki / "trust.pem"], input=odd, env=env)
    assert ver.returncode == 2, ver.stderr
    assert "cannot load libgmime-3.0.so" in assert_reason(ver)


def test_a_sqlite_that_cannot_be_loaded(run, tmp_path):
    """A store command says which file cannot be loaded (temporary, exit
    2), for a new store and an existing one; nothing is left behind."""
    db = tmp_path / "s.db"
    check_ok(run(["store", "init", "--store", db]))
    env = broken(tmp_path, soname("sqlite3", "libsqlite3.so"))
    r = run(["cert", "list", "--store", db], env=env)
    assert r.returncode == 2
    assert "SQLite cannot be used: cannot load libsqlite3.so" in \
        assert_reason(r)
    new = tmp_path / "new.db"
    r = run(["store", "init", "--store", new], env=env)
    assert r.returncode == 2
    assert "cannot load libsqlite3.so" in assert_reason(r)
    assert not new.exists()


def test_the_gateway_stops_at_start_without_libevent(gateway, tmp_path):
    gw = gateway()
    env = broken(tmp_path, soname("libevent_core", "libevent_core.so"))
    r = subprocess.run([gw.bin, "serve", "-c", str(gw.conf)], env={
        **os.environ, **env}, capture_output=True, timeout=30)
    assert r.returncode != 0
    err = r.stderr.decode(errors="replace")
    assert "cannot load libevent_core-2.1.so" in err, err
    assert "Sanitizer" not in err
