"""Recipients' certificates from an LDAP directory, against a real slapd
(ldap_util.py), through `smimegate directory lookup -c FILE [--json]
ADDR...` (src/cli/cmd_directory.c over src/daemon/directory.c).

    found via userSMIMECertificate   PKCS#7 certs-only (alice + inter):
                                     alice's certificate only
    found via userCertificate;binary DER X.509 (bob)
    not found                        no entry; an entry without
                                     certificates; only an expired one
    filter injection                 "*@example.com" matches nothing
    cache                            the same address twice (domain in
                                     another case): queries=1 hits=1, also
                                     for a negative answer
    anonymous and bound              certificates readable only when bound:
                                     anonymous finds none, the service
                                     account finds them, a wrong password
                                     is a temporary failure
    StartTLS                         to a server with a certificate the
                                     client trusts (LDAPTLS_CACERT): found;
                                     to a server without TLS: temporary
                                     failure
    directory silent                 a server that accepts and never
                                     answers: temporary failure after
                                     ldap_timeout
    directory down                   slapd stopped: temporary failure, a
                                     clear one-line reason, exit 2
    config                           check-config names FILE:LINE for a bad
                                     ldap_* setting
"""

import base64
import json
import os
import socket
import subprocess
import time

import pytest

from ldap_util import ACL_BOUND, ROOTDN, ROOTPW, SUFFIX, Slapd, slapd_or_skip
from smime_util import openssl, run_cmd

SERVICE_DN = "cn=gateway,ou=services," + SUFFIX
SERVICE_PW = "gw-secret"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def der(pki, name):
    return openssl("x509", "-in", pki / f"{name}.pem",
                   "-outform", "DER").stdout


def certs_only(pki, *names):
    args = ["crl2pkcs7", "-nocrl", "-outform", "DER"]
    for n in names:
        args += ["-certfile", pki / f"{n}.pem"]
    return openssl(*args).stdout


def person(uid, mail, extra=""):
    return (f"dn: uid={uid},ou=people,{SUFFIX}\n"
            "objectClass: inetOrgPerson\n"
            f"uid: {uid}\ncn: {uid}\nsn: {uid}\nmail: {mail}\n{extra}\n")


def entries(pki):
    return "\n".join([
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\n"
        "o: Example\ndc: example\n",
        f"dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\n"
        "ou: people\n",
        f"dn: ou=services,{SUFFIX}\nobjectClass: organizationalUnit\n"
        "ou: services\n",
        f"dn: {SERVICE_DN}\nobjectClass: inetOrgPerson\ncn: gateway\n"
        f"sn: gateway\nuserPassword: {SERVICE_PW}\n",
        person("alice", "alice@example.com",
               "userSMIMECertificate:: "
               + b64(certs_only(pki, "alice", "inter"))),
        person("bob", "bob@example.org",
               "userCertificate;binary:: " + b64(der(pki, "bob"))),
        person("dave", "dave@example.net"),
        person("expired", "expired@example.com",
               "userCertificate;binary:: " + b64(der(pki, "expired"))),
    ])


def start_slapd(root, pki, **kw):
    slapd_or_skip()
    s = Slapd(root, **kw).start()
    try:
        s.add(entries(pki))
    except BaseException:
        s.stop()
        raise
    return s


@pytest.fixture(scope="module")
def directory(tmp_path_factory, pki):
    s = start_slapd(tmp_path_factory.mktemp("slapd"), pki)
    yield s
    s.stop()


def write_conf(tmp_path, uri, extra=""):
    conf = tmp_path / "smimegate.conf"
    conf.write_text(
        f"hostname = gw.example.com\n"
        f"ldap_uri = {uri}\n"
        f"ldap_base = {SUFFIX}\n"
        "ldap_timeout = 3s\n"
        f"{extra}"
        "\n[listener in]\nlisten = 127.0.0.1:2525\nrole = incoming\n"
        "local_domains = example.com\n")
    return conf


def lookup(smimegate, conf, *addrs, json_out=True):
    args = [smimegate, "directory", "lookup", "-c", conf]
    if json_out:
        args.append("--json")
    return run_cmd(args + list(addrs), timeout=60)


def results(proc):
    return json.loads(proc.stdout)


def test_found_via_user_smime_certificate(smimegate, directory, tmp_path):
    conf = write_conf(tmp_path, directory.uri)
    r = lookup(smimegate, conf, "alice@example.com")
    assert r.returncode == 0, r.stderr
    res = results(r)["results"][0]
    assert res["status"] == "ok"
    # The bundle also holds the intermediate CA: not a recipient.
    assert len(res["certificates"]) == 1
    cert = res["certificates"][0]
    assert "CN=Alice" in cert["subject"]
    assert cert["emails"] == ["alice@example.com"]


def test_found_via_user_certificate_binary(smimegate, directory, tmp_path):
    conf = write_conf(tmp_path, directory.uri)
    r = lookup(smimegate, conf, "bob@example.org")
    assert r.returncode == 0, r.stderr
    res = results(r)["results"][0]
    assert res["status"] == "ok"
    assert [c["emails"] for c in res["certificates"]] == [["bob@example.org"]]


@pytest.mark.parametrize("addr, why", [
    ("nobody@example.org", "no certificate for nobody@example.org"),
    ("dave@example.net", "no certificate for dave@example.net"),
    ("expired@example.com", "none usable for encryption (expired)"),
    # Unescaped, (mail=*@example.com) would match alice.
    ("*@example.com", "no certificate for *@example.com"),
])
def test_not_found(smimegate, directory, tmp_path, addr, why):
    conf = write_conf(tmp_path, directory.uri)
    r = lookup(smimegate, conf, addr)
    assert r.returncode == 1, r.stderr
    res = results(r)["results"][0]
    assert res["status"] == "not-found"
    assert why in res["reason"]
    assert res["certificates"] == []


def test_second_lookup_from_cache(smimegate, directory, tmp_path):
    conf = write_conf(tmp_path, directory.uri)
    r = lookup(smimegate, conf, "alice@example.com", "alice@EXAMPLE.com",
               json_out=False)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[-1] == "queries=1 hits=1"
    assert lines[2].startswith("alice@EXAMPLE.com: ok: ") and \
        lines[2].endswith("(cached)")
    r = lookup(smimegate, conf, "nobody@example.org", "nobody@example.org")
    assert r.returncode == 1
    out = results(r)
    assert (out["queries"], out["hits"]) == (1, 1)
    assert [x["status"] for x in out["results"]] == ["not-found"] * 2
    # A different local part is a different address.
    r = lookup(smimegate, conf, "bob@example.org", "Bob@example.org")
    out = results(r)
    assert (out["queries"], out["hits"]) == (2, 0)


def test_anonymous_and_bound(smimegate, pki, tmp_path):
    s = start_slapd(tmp_path / "slapd", pki, acl=ACL_BOUND)
    try:
        anon = write_conf(tmp_path, s.uri)
        r = lookup(smimegate, anon, "bob@example.org")
        assert r.returncode == 1
        assert results(r)["results"][0]["status"] == "not-found"

        pw = tmp_path / "ldap.pw"
        pw.write_text(SERVICE_PW + "\n")
        os.chmod(pw, 0o600)
        bound = tmp_path / "bound"
        bound.mkdir()
        conf = write_conf(bound, s.uri,
                          f"ldap_bind_dn = {SERVICE_DN}\n"
                          f"ldap_bind_password_file = {pw}\n")
        r = lookup(smimegate, conf, "bob@example.org", "alice@example.com")
        assert r.returncode == 0, r.stderr
        assert [x["status"] for x in results(r)["results"]] == ["ok", "ok"]

        pw.write_text("wrong\n")
        r = lookup(smimegate, conf, "bob@example.org")
        assert r.returncode == 2
        res = results(r)["results"][0]
        assert res["status"] == "temporary"
        assert "bind" in res["reason"] and "Invalid credentials" in \
            res["reason"]
    finally:
        s.stop()


def test_bound_as_rootdn(smimegate, directory, tmp_path):
    pw = tmp_path / "root.pw"
    pw.write_text(ROOTPW)  # no newline: the whole first line
    os.chmod(pw, 0o600)
    conf = write_conf(tmp_path, directory.uri,
                      f"ldap_bind_dn = {ROOTDN}\n"
                      f"ldap_bind_password_file = {pw}\n")
    r = lookup(smimegate, conf, "alice@example.com")
    assert r.returncode == 0, r.stderr


def server_cert(d):
    """A self-signed certificate for 127.0.0.1 (cert, key paths)."""
    cert, key = d / "server.pem", d / "server.key"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", key, "-out", cert)
    os.chmod(key, 0o600)
    return cert, key


def test_starttls(smimegate, pki, tmp_path):
    cert, key = server_cert(tmp_path)
    s = start_slapd(tmp_path / "slapd", pki, tls=(cert, key))
    try:
        conf = write_conf(tmp_path, s.uri, "ldap_starttls = on\n")
        env = {"LDAPTLS_CACERT": str(cert)}
        r = run_cmd([smimegate, "directory", "lookup", "-c", conf, "--json",
                     "bob@example.org"], env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        assert results(r)["results"][0]["status"] == "ok"
        # A certificate the client does not trust: no lookup in clear.
        r = run_cmd([smimegate, "directory", "lookup", "-c", conf, "--json",
                     "bob@example.org"], env={"LDAPTLS_CACERT": str(
                         pki / "trust.pem")}, timeout=60)
        assert r.returncode == 2
        assert "StartTLS" in results(r)["results"][0]["reason"]
    finally:
        s.stop()


def test_starttls_refused(smimegate, directory, tmp_path):
    conf = write_conf(tmp_path, directory.uri, "ldap_starttls = on\n")
    r = lookup(smimegate, conf, "bob@example.org")
    assert r.returncode == 2
    res = results(r)["results"][0]
    assert res["status"] == "temporary"
    assert res["reason"].startswith(f"directory {directory.uri}: StartTLS: ")


def test_directory_down(smimegate, pki, tmp_path):
    s = start_slapd(tmp_path / "slapd", pki)
    conf = write_conf(tmp_path, s.uri, "ldap_retry_after = 0\n")
    r = lookup(smimegate, conf, "alice@example.com", json_out=False)
    assert r.returncode == 0, r.stderr
    s.stop()
    r = lookup(smimegate, conf, "alice@example.com", "bob@example.org",
               json_out=False)
    assert r.returncode == 2
    err = r.stderr.decode().splitlines()
    assert len(err) == 2  # one clear line per address
    assert err[0].startswith("smimegate: directory: temporary: "
                             "alice@example.com: directory " + s.uri)
    assert "Can't contact LDAP server" in err[0]
    # A temporary failure is not cached: both addresses were tried.
    assert r.stdout.decode().splitlines()[-1] == "queries=2 hits=0"


def test_directory_silent(smimegate, tmp_path):
    slapd_or_skip()
    with socket.socket() as ls:
        ls.bind(("127.0.0.1", 0))
        ls.listen(4)  # the kernel accepts; nobody ever answers
        port = ls.getsockname()[1]
        conf = write_conf(tmp_path, f"ldap://127.0.0.1:{port}/")
        t0 = time.monotonic()
        r = lookup(smimegate, conf, "alice@example.com")
        elapsed = time.monotonic() - t0
    assert r.returncode == 2
    res = results(r)["results"][0]
    assert res["status"] == "temporary"
    assert "Timed out" in res["reason"], res["reason"]
    assert 2 < elapsed < 20  # ldap_timeout = 3s, tried once more


def test_fail_fast_while_down(smimegate, tmp_path):
    # The first lookup waits for the timeout; the next ones, within
    # ldap_retry_after, are answered at once with the same reason.
    slapd_or_skip()
    with socket.socket() as ls:
        ls.bind(("127.0.0.1", 0))
        ls.listen(4)
        port = ls.getsockname()[1]
        conf = write_conf(tmp_path, f"ldap://127.0.0.1:{port}/")
        t0 = time.monotonic()
        r = lookup(smimegate, conf, "alice@example.com", "bob@example.org",
                   "dave@example.net")
        elapsed = time.monotonic() - t0
    assert r.returncode == 2
    res = results(r)["results"]
    assert [x["status"] for x in res] == ["temporary"] * 3
    assert "Timed out" in res[0]["reason"]
    assert "not tried again for" not in res[0]["reason"]
    for x in res[1:]:
        assert "Timed out" in x["reason"]
        assert "not tried again for 30s" in x["reason"] or \
            "not tried again for 2" in x["reason"], x["reason"]
    assert elapsed < 12  # one timeout (3s, tried twice), not three


def test_ca_file(smimegate, pki, tmp_path):
    # ldap_ca_file instead of libldap's own settings: the server's
    # certificate checks against it, or there is no lookup at all.
    cert, key = server_cert(tmp_path)
    s = start_slapd(tmp_path / "slapd", pki, tls=(cert, key))
    try:
        conf = write_conf(tmp_path, s.uri,
                          f"ldap_starttls = on\nldap_ca_file = {cert}\n")
        r = run_cmd([smimegate, "directory", "lookup", "-c", conf, "--json",
                     "bob@example.org"], env={"LDAPTLS_CACERT": ""},
                    timeout=60)
        assert r.returncode == 0, r.stderr
        assert results(r)["results"][0]["status"] == "ok"
        conf = write_conf(tmp_path, s.uri,
                          "ldap_starttls = on\n"
                          f"ldap_ca_file = {pki / 'trust.pem'}\n")
        r = run_cmd([smimegate, "directory", "lookup", "-c", conf, "--json",
                     "bob@example.org"], env={"LDAPTLS_CACERT": str(cert)},
                    timeout=60)
        assert r.returncode == 2
        assert "StartTLS" in results(r)["results"][0]["reason"]
    finally:
        s.stop()
    conf = write_conf(tmp_path, "ldap://127.0.0.1:1/",
                      f"ldap_ca_file = {tmp_path / 'missing.pem'}\n")
    r = run_cmd([smimegate, "check-config", "-c", conf], timeout=60)
    assert r.returncode == 2
    assert f"{conf}:5: ldap_ca_file".encode() in r.stderr, r.stderr


@pytest.mark.parametrize("extra, line, why", [
    ("ldap_filter = (uid=x)\n", 5, "exactly one %s"),
    ("ldap_starttls = maybe\n", 5, "on or off"),
    ("ldap_bind_dn = cn=x\n", 5, "go together"),
    ("ldap_cache_ttl = 8d\n", 5, "a duration from 0s to 604800s"),
])
def test_check_config_names_the_line(smimegate, tmp_path, extra, line, why):
    conf = write_conf(tmp_path, "ldap://127.0.0.1:1/", extra)
    r = subprocess.run([smimegate, "check-config", "-c", conf],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    assert r.returncode == 2
    err = r.stderr.decode()
    assert f"{conf}:{line}: " in err and why in err, err


def test_gateway_encrypts_to_a_directory_only_recipient(gateway, directory,
                                                        pki):
    """Through the daemon: bob@example.org has no certificate in the
    store, only in the directory; the message leaves encrypted to it and
    Bob's key opens it.  The second message is served from the cache (no
    query).  With the directory down, a new recipient's message waits
    (deferred), it is not bounced nor sent in clear, and the daemon keeps
    serving."""
    from gateway_util import swaks
    gw = gateway(profile="mode = sign-encrypt\nmissing_key = bounce\n",
                 extra=f"ldap_uri = {directory.uri}\nldap_base = {SUFFIX}\n"
                       "ldap_timeout = 2s\nretry_min = 60s\n")
    gw.start()
    for n in (1, 2):
        r = swaks(gw.out_port, "--to", "bob@example.org", "--body",
                  f"From the directory {n}.")
        assert r.returncode == 0, r.stdout.decode()
    msgs = gw.delivered(2)
    for m in msgs:
        dec = subprocess.run(["openssl", "cms", "-decrypt", "-recip",
                              pki / "bob.pem", "-inkey", pki / "bob.key"],
                             input=m, capture_output=True, timeout=60)
        assert dec.returncode == 0, dec.stderr.decode()
        assert b"From the directory" in dec.stdout
    log = gw.log.read_text()
    assert "certificate=directory queries=1 hits=0" in log
    assert "certificate=directory queries=1 hits=1" in log

    directory.stop()
    try:
        r = swaks(gw.out_port, "--to", "alice@example.com", "--body",
                  "Directory down.")
        assert r.returncode == 0
        deadline = time.time() + 30
        while "event=deferred" not in gw.log.read_text():
            assert time.time() < deadline, gw.log.read_text()
            time.sleep(0.1)
        assert gw.proc.poll() is None
        assert len(list((gw.outbox / "new").glob("*"))) == 2
        assert "event=bounced" not in gw.log.read_text()
    finally:
        directory.start()


def test_gateway_reconnects_and_keeps_the_cache_over_a_reload(gateway, pki,
                                                              tmp_path):
    """slapd restarts under the daemon's open connection: the next lookup
    reconnects and succeeds (nothing deferred).  A reload with the same
    ldap_* settings keeps the cache: the next message makes no query."""
    import signal

    from gateway_util import swaks, wait_log
    s = start_slapd(tmp_path / "slapd", pki)
    try:
        gw = gateway(profile="mode = encrypt\nmissing_key = bounce\n",
                     extra=f"ldap_uri = {s.uri}\nldap_base = {SUFFIX}\n"
                           "ldap_timeout = 2s\nldap_cache_ttl = 0\n")
        gw.start()
        r = swaks(gw.out_port, "--to", "bob@example.org", "--body", "One.")
        assert r.returncode == 0, r.stdout.decode()
        gw.delivered(1)
        s.stop()
        s.start()
        r = swaks(gw.out_port, "--to", "bob@example.org", "--body", "Two.")
        assert r.returncode == 0, r.stdout.decode()
        gw.delivered(2)
        log = wait_log(gw, "certificate=directory queries=2 hits=0")
        assert "event=deferred" not in log

        # the same settings with a cache now: reloads keep it
        gw.conf.write_text(gw.conf.read_text().replace(
            "ldap_cache_ttl = 0\n", "ldap_cache_ttl = 1h\n"))
        gw.proc.send_signal(signal.SIGHUP)
        wait_log(gw, "event=reload", n=1)
        r = swaks(gw.out_port, "--to", "bob@example.org", "--body", "Three.")
        assert r.returncode == 0
        gw.delivered(3)
        wait_log(gw, "certificate=directory queries=1 hits=0")
        gw.proc.send_signal(signal.SIGHUP)
        wait_log(gw, "event=reload directory=kept")
        r = swaks(gw.out_port, "--to", "bob@example.org", "--body", "Four.")
        assert r.returncode == 0
        gw.delivered(4)
        wait_log(gw, "certificate=directory queries=1 hits=1")
    finally:
        s.stop()
