"""The daemon gives up root: with `user = NAME` it becomes that user (uid,
gid, groups) before it opens its store, spool or keys, keeps only
CAP_NET_BIND_SERVICE so that ports below 1024 open at start and on
reload, and is not dumpable.  Files the user cannot read stop the start
with a reason that names the user; a reload cannot change the user.  The
spool commands (`queue`, `quarantine`) run as root with -c act as that
user.

These tests need root (the daemon starts as root and drops to `nobody`);
as another user they are skipped.  The gateway's directory is made under
/tmp, not under pytest's 0700 temporary directory, so that `nobody` can
reach it, and is given to `nobody` as an administrator would
(`chown -R`).
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from gateway_util import T, gateways, org_cert, swaks, wait_log

try:
    NOBODY = pwd.getpwnam("nobody")
except KeyError:  # Debian always has it
    NOBODY = None

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="dropping root needs root"),
    pytest.mark.skipif(NOBODY is None, reason="no user nobody here"),
]


@pytest.fixture
def gateway(smimegate):
    root = Path(tempfile.mkdtemp(prefix="sg-privs-", dir="/tmp"))
    os.chmod(root, 0o755)
    try:
        yield from gateways(smimegate, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def low_port(avoid=()):
    """A free port below 1024 on 127.0.0.1 (binding it needs root, or
    CAP_NET_BIND_SERVICE)."""
    for port in range(1000, 600, -1):
        if port in avoid:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    pytest.fail("no free port below 1024")


def as_nobody(gw, out_port=None):
    """Runs GW as nobody, its outgoing listener on OUT_PORT, with its
    directory given to nobody."""
    text = gw.conf.read_text().replace("[listener out]",
                                       "user = nobody\n\n[listener out]", 1)
    if out_port is not None:
        text = text.replace(f"listen = 127.0.0.1:{gw.out_port}\n",
                            f"listen = 127.0.0.1:{out_port}\n", 1)
        gw.out_port = out_port
    gw.conf.write_text(text)
    return gw


def chown_nobody(path):
    for d, dirs, files in os.walk(path):
        for name in [d] + [os.path.join(d, f) for f in dirs + files]:
            os.chown(name, NOBODY.pw_uid, NOBODY.pw_gid)


def status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return fields


def test_runs_as_the_user_with_only_the_bind_capability(gateway):
    gw = as_nobody(gateway(), out_port=low_port())
    pem = org_cert(gw)
    chown_nobody(gw.root)
    # root may still manage the store: its files keep their owner
    gw.cli("cert", "create", "--name", "second", "--cn", "Second",
           "--san-email", "second@example.com")
    for f in gw.root.glob("store.db*"):
        assert f.stat().st_uid == NOBODY.pw_uid, f
    gw.start()
    st = status(gw.proc.pid)
    assert st["Uid"] == [str(NOBODY.pw_uid)] * 4
    assert st["Gid"] == [str(NOBODY.pw_gid)] * 4
    assert "0" not in st["Groups"]
    # permitted and effective: CAP_NET_BIND_SERVICE (bit 10) alone
    assert st["CapPrm"] == st["CapEff"] == ["0000000000000400"]
    assert st["CapInh"] == ["0000000000000000"]
    # not dumpable: its /proc files stay root's, nobody cannot trace it
    assert os.stat(f"/proc/{gw.proc.pid}/mem").st_uid == 0
    text = wait_log(gw, "event=user user=nobody")
    assert "running as root" not in text

    r = swaks(gw.out_port, "--body", "Signed by nobody.")
    assert r.returncode == 0, r.stdout.decode()
    msg = gw.delivered(1)[0]
    v = subprocess.run(["openssl", "cms", "-verify", "-CAfile", str(pem)],
                       input=msg, capture_output=True, timeout=T)
    assert v.returncode == 0, v.stderr.decode()
    assert b"Signed by nobody." in v.stdout
    for f in (gw.outbox / "new").iterdir():
        assert f.stat().st_uid == NOBODY.pw_uid
    assert (gw.root / "spool" / "queue").stat().st_uid == NOBODY.pw_uid

    # the queue command, as root, acts as the daemon's user on its spool
    r = subprocess.run([gw.bin, "queue", "-c", str(gw.conf), "flush"],
                       capture_output=True, timeout=T)
    assert r.returncode == 0, r.stderr.decode()
    assert "every waiting message is due now" in r.stdout.decode()
    r = subprocess.run([gw.bin, "quarantine", "-c", str(gw.conf), "list"],
                       capture_output=True, timeout=T)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode() == "(none)\n"

    # the kept capability: a reload opens another port below 1024
    old, new = gw.out_port, low_port(avoid={gw.out_port})
    gw.conf.write_text(gw.conf.read_text().replace(
        f"listen = 127.0.0.1:{old}\n", f"listen = 127.0.0.1:{new}\n"))
    gw.proc.send_signal(signal.SIGHUP)
    wait_log(gw, "event=reloaded")
    r = swaks(new, "--body", "After the reload.")
    assert r.returncode == 0, r.stdout.decode()
    assert any(b"After the reload." in m for m in gw.delivered(2))
    assert status(gw.proc.pid)["Uid"] == [str(NOBODY.pw_uid)] * 4


def test_files_the_user_cannot_open_stop_the_start(gateway, smimegate):
    # the store stays root's (0600), as `smimegate cert create` left it
    gw = as_nobody(gateway())
    r = subprocess.run([smimegate, "serve", "-c", str(gw.conf)],
                       capture_output=True, timeout=T)
    assert r.returncode != 0
    err = r.stderr.decode()
    assert "Permission denied (running as user nobody)" in err, err
    assert str(gw.store) in err, err
    assert not (gw.root / "spool").exists()


def test_a_reload_cannot_change_the_user(gateway):
    gw = as_nobody(gateway())
    chown_nobody(gw.root)
    gw.start()
    gw.conf.write_text(gw.conf.read_text().replace("user = nobody",
                                                   "user = daemon"))
    gw.proc.send_signal(signal.SIGHUP)
    text = wait_log(gw, "event=reload-refused")
    assert ("user changed from nobody to daemon: only a restart changes it"
            in text), text
    r = swaks(gw.out_port, "--body", "Still serving.")
    assert r.returncode == 0, r.stdout.decode()
    assert status(gw.proc.pid)["Uid"] == [str(NOBODY.pw_uid)] * 4


@pytest.mark.parametrize("user, reason", [
    ("no-such-user-here", 'user "no-such-user-here": no such user'),
    ("root", 'user "root" is root: name the unprivileged user'),
])
def test_check_config_refuses_a_bad_user(gateway, smimegate, user, reason):
    gw = gateway()
    gw.conf.write_text(gw.conf.read_text().replace(
        "[listener out]", f"user = {user}\n\n[listener out]", 1))
    r = subprocess.run([smimegate, "check-config", "-c", str(gw.conf)],
                       capture_output=True, timeout=T)
    assert r.returncode == 2
    assert reason in r.stderr.decode(), r.stderr.decode()


def test_check_config_opens_what_the_user_would(gateway, smimegate):
    # as root, check-config opens the store as the daemon's user would:
    # the root-owned store is caught before a start would fail
    gw = as_nobody(gateway())
    r = subprocess.run([smimegate, "check-config", "-c", str(gw.conf)],
                       capture_output=True, timeout=T)
    assert r.returncode == 2
    assert "Permission denied (as user nobody)" in r.stderr.decode()
    chown_nobody(gw.root)
    r = subprocess.run([smimegate, "check-config", "-c", str(gw.conf)],
                       capture_output=True, timeout=T)
    assert r.returncode == 0, r.stderr.decode()
    assert "\n  user: nobody\n" in r.stdout.decode()


def test_root_without_a_user_is_warned(gateway):
    gw = gateway().start()
    wait_log(gw, 'event=warning reason="running as root: set user = NAME')
