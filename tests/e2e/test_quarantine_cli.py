"""`smimegate quarantine list|show|release|delete` against entries written
directly in the documented on-disk format (docs/quarantine.md), since the
daemon's filters are tested elsewhere: the table and --json, show with
headers, --json and --raw (the exact bytes), release (files move to
release/, modes kept), delete, damaged entries, repair at opening, the
exit codes (0 done, 1 not found, 2 usage or damaged state) and the modes
of what the command creates (directories 0700, files 0600).
"""

import json
import os
import stat

import pytest

from smime_util import assert_reason

T = 60
B32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def qid(n):
    """A queue ID: 24 characters of Crockford base32."""
    s = ""
    for _ in range(24):
        s = B32[n % 32] + s
        n //= 32
    return s


def enc(value):
    """Percent-encoding of docs/quarantine.md: bytes <= 0x20, 0x7f and %."""
    if isinstance(value, str):
        value = value.encode("utf-8")
    return b"".join(b"%%%02X" % b if b <= 0x20 or b in (0x7F, 0x25)
                    else bytes([b]) for b in value)


def write_entry(spool, name, ident, msg, quarantined=1700000000,
                rule="r1", reason="matched", mail_from="a@example.org",
                rcpts=(("b@example.org", None),), received=1699999999,
                listener="in", role=2, client="192.0.2.1",
                helo="client.example", dsn_ret=None, dsn_envid=None,
                where=None):
    """A complete entry, as the daemon writes it (data first, then the
    metadata whose presence means complete)."""
    d = where or spool / "quarantine" / name
    for p in (spool, spool / "quarantine", spool / "release", d):
        p.mkdir(mode=0o700, exist_ok=True)
    lines = [b"version 1", b"id " + enc(ident), b"quarantine " + enc(name),
             b"quarantined %d" % quarantined, b"size %d" % len(msg)]
    if rule is not None:
        lines.append(b"rule " + enc(rule))
    if reason is not None:
        lines.append(b"reason " + enc(reason))
    lines.append(b"received %d" % received)
    lines.append(b"mail_from " + enc(mail_from))
    for key, val in (("listener", listener), ("client", client),
                     ("helo", helo), ("dsn_ret", dsn_ret),
                     ("dsn_envid", dsn_envid)):
        if val is not None:
            lines.append(key.encode() + b" " + enc(val))
    lines.append(b"role %d" % role)
    for addr, notify in rcpts:
        lines.append(b"rcpt " + enc(addr)
                     + (b" " + enc(notify) if notify else b""))
    lines.append(b"end")
    m = d / f"{ident}.msg"
    m.write_bytes(msg)
    m.chmod(0o600)
    meta = d / f"{ident}.meta"
    meta.write_bytes(b"\n".join(lines) + b"\n")
    meta.chmod(0o600)
    return ident


def mode(p):
    return stat.S_IMODE(os.lstat(p).st_mode)


MSG1 = (b"From: Alice <alice@partner.example>\r\n"
        b"To: bob@example.org\r\n"
        b"Subject: =?UTF-8?B?w6l0w6k=?= report\r\n"
        b"\r\n"
        b"body \xff\xfe binary\r\n\x00\x01 and more\r\n")
MSG2 = b"Subject: second\r\n\r\nhello\r\n"
MSG3 = b"Subject: third\n\nunix line ends\n"


@pytest.fixture
def spool(tmp_path):
    s = tmp_path / "spool"
    s.mkdir(mode=0o700)
    return s


@pytest.fixture
def q(run, spool):
    """q(*args) runs `smimegate quarantine --spool SPOOL ARGS`."""
    def _q(*args):
        return run(["quarantine", "--spool", spool, *args], timeout=T)
    return _q


@pytest.fixture
def three(spool):
    """Three entries: two in Policy, one in Other, at different times."""
    a = write_entry(spool, "Policy", qid(3), MSG1, quarantined=1700000300,
                    rule="no smime", reason="line1\r\nline2 100% \u00e9",
                    mail_from="alice@partner.example",
                    rcpts=(("bob@example.org", "SUCCESS,FAILURE"),
                           ("carol@example.org", None)),
                    dsn_ret="HDRS", dsn_envid="env id")
    b = write_entry(spool, "Other", qid(2), MSG2, quarantined=1700000100,
                    mail_from="", rule="big", reason="too big")
    c = write_entry(spool, "Policy", qid(1), MSG3, quarantined=1700000200)
    return a, b, c


def expect(proc, code):
    assert proc.returncode == code, (
        f"exit {proc.returncode}, expected {code}; stderr: "
        f"{proc.stderr.decode('utf-8', 'replace')[:1000]}")
    return proc


# ---------------------------------------------------------------------------
# list


def test_list_table_oldest_first(q, three):
    a, b, c = three
    out = expect(q("list"), 0).stdout.decode()
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["ID", "QUARANTINE", "QUARANTINED",
                                    "FROM"], out
    rows = lines[1:]
    assert [r.split()[0] for r in rows] == [b, c, a], out
    rb, rc, ra = rows
    assert "Other" in rb and "2023-11-14T22:15:00Z" in rb and "<>" in rb
    assert "too big" in rb
    assert " 2 " in ra and f" {len(MSG1)} " in ra, ra
    assert "alice@partner.example" in ra and "no smime" in ra
    # the CR/LF of the reason does not break the table
    assert "line1??line2 100% \u00e9" in ra, ra
    assert "\r" not in out
    assert len(rows) == 3


def test_list_json_and_name(q, three):
    a, b, c = three
    v = json.loads(expect(q("list", "--json"), 0).stdout)
    assert [e["id"] for e in v] == [b, c, a]
    e = v[2]
    assert e["quarantine"] == "Policy" and e["damaged"] is False
    assert e["quarantined"] == "2023-11-14T22:18:20Z"
    assert e["quarantined_epoch"] == 1700000300
    assert e["size"] == len(MSG1)
    assert e["rule"] == "no smime"
    assert e["reason"] == "line1\r\nline2 100% \u00e9"
    assert e["mail_from"] == "alice@partner.example"
    assert e["recipients"] == [
        {"address": "bob@example.org", "notify": "SUCCESS,FAILURE"},
        {"address": "carol@example.org", "notify": None}]
    assert e["received"] == "2023-11-14T22:13:19Z"
    assert e["listener"] == "in" and e["role"] == "incoming"
    assert e["client"] == "192.0.2.1" and e["helo"] == "client.example"
    assert e["dsn_ret"] == "HDRS" and e["dsn_envid"] == "env id"
    assert v[0]["mail_from"] == "" and v[0]["dsn_ret"] is None
    keys = set(v[0])
    assert all(set(x) == keys for x in v)

    other = json.loads(expect(q("list", "--name", "Other", "--json"),
                              0).stdout)
    assert [x["id"] for x in other] == [b]
    assert json.loads(q("list", "--name", "Nothing", "--json").stdout) == []


def test_list_empty_spool(q, spool):
    assert expect(q("list"), 0).stdout == b"(none)\n"
    assert json.loads(expect(q("list", "--json"), 0).stdout) == []
    # what the command created: directories 0700, the lock file 0600
    assert mode(spool / "quarantine") == 0o700
    assert mode(spool / "release") == 0o700
    assert mode(spool / "quarantine" / ".lock") == 0o600


def test_odd_bytes_are_safe_on_a_terminal_and_in_json(q, spool):
    evil = "x\x1b]0;owned\x07y\u009b2J@example.org"
    i = write_entry(spool, "Policy", qid(9), MSG2, mail_from=evil,
                    reason="a\tb\x7fc", rcpts=(("\u00e9l\u00e8ve@ex.org",
                                                None),))
    out = expect(q("list"), 0).stdout
    assert b"\x1b" not in out and b"\x07" not in out
    assert b"\xc2\x9b" not in out and b"\x7f" not in out
    v = json.loads(expect(q("list", "--json"), 0).stdout)
    assert v[0]["id"] == i
    assert v[0]["mail_from"] == evil
    assert v[0]["reason"] == "a\tb\x7fc"
    assert v[0]["recipients"][0]["address"] == "\u00e9l\u00e8ve@ex.org"
    shown = expect(q("show", i), 0).stdout
    assert b"\x1b" not in shown and b"\xc2\x9b" not in shown


# ---------------------------------------------------------------------------
# show


def test_show_text(q, three):
    a, _, _ = three
    out = expect(q("show", a), 0).stdout.decode("utf-8")
    assert f"id:          {a}" in out
    assert "quarantine:  Policy" in out
    assert "quarantined: 2023-11-14T22:18:20Z" in out
    assert "rule:        no smime" in out
    assert "reason:      line1??line2 100% \u00e9" in out
    assert f"size:        {len(MSG1)} bytes" in out
    assert "from:        <alice@partner.example>" in out
    assert "to:          <bob@example.org> NOTIFY=SUCCESS,FAILURE" in out
    assert "to:          <carol@example.org>" in out
    assert "listener:    in (incoming)" in out
    assert "dsn:         RET=HDRS ENVID=env id" in out
    # the headers, without the body
    assert "Subject: =?UTF-8?B?w6l0w6k=?= report" in out
    assert "To: bob@example.org" in out
    assert "binary" not in out


def test_show_json_and_raw(q, three):
    a, b, c = three
    e = json.loads(expect(q("show", a, "--json"), 0).stdout)
    assert e["id"] == a and e["size"] == len(MSG1)
    assert e["headers"].startswith("From: Alice <alice@partner.example>")
    assert "Subject: =?UTF-8?B?w6l0w6k=?= report" in e["headers"]
    assert "binary" not in e["headers"]
    for ident, msg in ((a, MSG1), (b, MSG2), (c, MSG3)):
        assert expect(q("show", ident, "--raw"), 0).stdout == msg
    # --raw changes nothing on disk
    assert (q("list").stdout.decode().count("\n")) == 4


# ---------------------------------------------------------------------------
# release, delete


def test_release_moves_files_to_release(q, spool, three):
    a, b, c = three
    p = expect(q("release", a, b), 0)
    assert p.stdout.decode().split("\n")[:2] == [f"released {a}",
                                                 f"released {b}"]
    rel = spool / "release"
    for ident, msg in ((a, MSG1), (b, MSG2)):
        assert (rel / f"{ident}.msg").read_bytes() == msg
        assert (rel / f"{ident}.meta").is_file()
        assert mode(rel / f"{ident}.msg") == 0o600
        assert mode(rel / f"{ident}.meta") == 0o600
        assert not (spool / "quarantine" / "Policy" / f"{ident}.msg"
                    ).exists()
        assert not (spool / "quarantine" / "Other" / f"{ident}.meta"
                    ).exists()
    assert mode(rel) == 0o700
    assert [x["id"] for x in json.loads(q("list", "--json").stdout)] == [c]
    # released: in no quarantine any more
    line = assert_reason(expect(q("show", a), 1))
    assert "not-found" in line and a in line
    line = assert_reason(expect(q("release", a), 1))
    assert "not-found" in line and a in line


def test_a_copy_of_a_released_entry_goes_at_opening(q, spool, three):
    """An ID complete in release/ and still in a quarantine (a message
    quarantined again after a crash) is released already: opening removes
    the quarantine's copy, so it cannot be released twice."""
    a, _, _ = three
    write_entry(spool, "Policy", a, MSG1, where=spool / "release")
    line = assert_reason(expect(q("release", a), 1))
    assert "not-found" in line
    assert not (spool / "quarantine" / "Policy" / f"{a}.msg").exists()
    assert (spool / "release" / f"{a}.msg").read_bytes() == MSG1
    # a lone .msg in release/ (no partner anywhere) is removed
    (spool / "release" / f"{qid(99)}.msg").write_bytes(b"stray")
    expect(q("list"), 0)
    assert not (spool / "release" / f"{qid(99)}.msg").exists()


def test_delete(q, spool, three):
    a, b, c = three
    assert expect(q("delete", c), 0).stdout == f"deleted {c}\n".encode()
    assert not (spool / "quarantine" / "Policy" / f"{c}.msg").exists()
    assert not (spool / "quarantine" / "Policy" / f"{c}.meta").exists()
    assert sorted(os.listdir(spool / "release")) == []
    line = assert_reason(expect(q("delete", c), 1))
    assert "not-found" in line and c in line
    # several IDs: each tried, the worst exit status
    p = expect(q("delete", a, c, b), 1)
    assert p.stdout.decode().splitlines() == [f"deleted {a}",
                                              f"deleted {b}"]
    assert c in assert_reason(p)
    assert expect(q("list"), 0).stdout == b"(none)\n"


def test_not_found_is_exit_1(q, three):
    missing = qid(12345)
    for args in (("show", missing), ("show", missing, "--raw"),
                 ("release", missing), ("delete", missing)):
        p = expect(q(*args), 1)
        line = assert_reason(p)
        assert "not-found" in line and missing in line, line
        assert p.stdout == b""


# ---------------------------------------------------------------------------
# usage errors


@pytest.mark.parametrize("args", [
    ("list",),                                  # neither -c nor --spool
    ("--spool", "S", "-c", "C", "list"),        # both
    ("--spool", "S"),                           # no command
    ("--spool", "S", "purge"),                  # unknown command
    ("--spool", "S", "show"),                   # no ID
    ("--spool", "S", "show", "A", "B"),         # two IDs
    ("--spool", "S", "release"),
    ("--spool", "S", "delete"),
    ("--spool", "S", "show", "../../etc/passwd"),
    ("--spool", "S", "delete", "00000000000000000000000a"),
    ("--spool", "S", "release", "0000000000000000000000000"),
    ("--spool", "S", "list", "--name", "../x"),
    ("--spool", "S", "list", "--name", "a/b"),
    ("--spool", "S", "list", "--name", "x" * 65),
    ("--spool", "S", "list", "--raw"),
    ("--spool", "S", "show", "0" * 24, "--raw", "--json"),
    ("--spool", "S", "release", "0" * 24, "--json"),
    ("--spool", "S", "delete", "0" * 24, "--name", "Policy"),
    ("--spool", "S", "list", "extra"),
    ("--spool", "S", "list", "--bogus"),
    ("--spool",),
])
def test_usage_is_exit_2(run, spool, args):
    args = [str(spool) if a == "S" else a for a in args]
    p = expect(run(["quarantine", *args], timeout=T), 2)
    assert "usage" in assert_reason(p)
    assert p.stdout == b""
    # and nothing was created
    assert not (spool / "quarantine").exists()


def test_help(run):
    p = expect(run(["quarantine", "--help"], timeout=T), 0)
    assert b"release ID" in p.stdout


# ---------------------------------------------------------------------------
# the configuration, damaged state, repair, unsafe directories


def test_config_gives_the_spool(run, tmp_path, spool, three):
    conf = tmp_path / "smimegate.conf"
    conf.write_text(
        f"hostname = gw.test\nstore = {tmp_path / 'store.db'}\n"
        f"spool = {spool}\n\n[listener in]\nlisten = 127.0.0.1:2526\n"
        f"role = incoming\nlocal_domains = example.org\n")
    v = json.loads(expect(run(["quarantine", "-c", conf, "list", "--json"],
                              timeout=T), 0).stdout)
    assert len(v) == 3
    a = three[0]
    assert expect(run(["quarantine", "--config", conf, "delete", a],
                      timeout=T), 0).stdout == f"deleted {a}\n".encode()
    bad = tmp_path / "bad.conf"
    bad.write_text("spool = \n[nonsense\n")
    p = expect(run(["quarantine", "-c", bad, "list"], timeout=T), 2)
    assert "bad.conf" in assert_reason(p)
    p = run(["quarantine", "-c", tmp_path / "missing.conf", "list"],
            timeout=T)
    assert p.returncode == 2
    assert_reason(p)


def test_damaged_entry_is_exit_2(q, spool, three):
    a, b, c = three
    meta = spool / "quarantine" / "Policy" / f"{c}.meta"
    meta.write_bytes(meta.read_bytes().replace(b"end\n", b""))  # cut short
    p = expect(q("list"), 2)
    out = p.stdout.decode()
    assert a in out and b in out and "(damaged" in out
    assert "damaged" in assert_reason(p)
    v = json.loads(expect(q("list", "--json"), 2).stdout)
    assert [x["damaged"] for x in v if x["id"] == c] == [True]
    line = assert_reason(expect(q("show", c), 2))
    assert "damaged" in line and c in line and "end" in line
    # a message that is not the size its metadata says
    (spool / "quarantine" / "Policy" / f"{a}.msg").write_bytes(b"short")
    line = assert_reason(expect(q("show", a, "--raw"), 2))
    assert "damaged" in line
    # delete still removes them
    assert expect(q("delete", c, a), 0).stdout.count(b"deleted") == 2
    assert [x["id"] for x in json.loads(expect(q("list", "--json"),
                                               0).stdout)] == [b]


def test_opening_repairs_crash_leftovers(q, spool, three):
    a, b, c = three
    pol = spool / "quarantine" / "Policy"
    (pol / f".tmp.{qid(7)}.msg").write_bytes(b"half")
    (pol / f"{qid(8)}.msg").write_bytes(b"no metadata")
    # a release cut between its two renames
    os.rename(pol / f"{a}.msg", spool / "release" / f"{a}.msg")
    v = json.loads(expect(q("list", "--json"), 0).stdout)
    assert [x["id"] for x in v] == [b, c]
    assert not (pol / f".tmp.{qid(7)}.msg").exists()
    assert not (pol / f"{qid(8)}.msg").exists()
    assert (spool / "release" / f"{a}.msg").read_bytes() == MSG1
    assert (spool / "release" / f"{a}.meta").is_file()
    assert not (pol / f"{a}.meta").exists()


def test_unsafe_directories_are_refused(q, spool, three):
    os.chmod(spool / "quarantine" / "Policy", 0o755)
    line = assert_reason(expect(q("list"), 2))
    assert "0700" in line
    os.chmod(spool / "quarantine" / "Policy", 0o700)
    os.chmod(spool, 0o777)
    assert "writable" in assert_reason(expect(q("list"), 2))
    os.chmod(spool, 0o700)
    assert expect(q("list"), 0)


def test_missing_spool_is_exit_2(run, tmp_path):
    p = expect(run(["quarantine", "--spool", tmp_path / "none", "list"],
                   timeout=T), 2)
    assert "none" in assert_reason(p)
    assert not (tmp_path / "none").exists()
