"""A real OpenLDAP slapd for the directory lookup tests.

    Slapd(root)          a throw-away server under ROOT (slapd.conf, an mdb
                         database), suffix dc=example,dc=org, rootdn
                         cn=admin,dc=example,dc=org / "secret"; ACL
                         ACL_OPEN (anonymous read) or ACL_BOUND
                         (certificates only for bound clients); TLS=
                         (cert, key) offers StartTLS with that
                         certificate.
    .start()             runs `slapd -d 0` in the foreground (tracked by
                         its PID) and waits until it answers
    .stop()              SIGTERM to that PID, then waits for it
    .add(ldif)           ldapadd as the rootdn
    .uri                 "ldap://127.0.0.1:PORT/"

`slapd_or_skip()` skips the calling test when slapd is not installed (the
only reason to skip).
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from gateway_util import free_port

SLAPD = "/usr/sbin/slapd"
SCHEMA = Path("/etc/ldap/schema")
MODULES = Path("/usr/lib/ldap")
SUFFIX = "dc=example,dc=org"
ROOTDN = "cn=admin," + SUFFIX
ROOTPW = "secret"

CONF = """\
include {schema}/core.schema
include {schema}/cosine.schema
include {schema}/inetorgperson.schema
pidfile {root}/slapd.pid
modulepath {modules}
moduleload back_mdb
database mdb
maxsize 16777216
suffix "{suffix}"
rootdn "{rootdn}"
rootpw {rootpw}
directory {root}/db
index objectClass,mail eq
access to attrs=userPassword by anonymous auth by * none
{acl}
"""

# Anyone may read everything (but passwords).
ACL_OPEN = "access to * by * read"
# Certificates only for bound clients: anonymous searches find the entry
# but none of its certificates.
ACL_BOUND = ("access to attrs=userSMIMECertificate,userCertificate "
             "by users read by * none\n" + ACL_OPEN)


def slapd_or_skip():
    if not os.access(SLAPD, os.X_OK):
        pytest.skip("slapd is not installed (/usr/sbin/slapd)")


class Slapd:
    def __init__(self, root: Path, acl=ACL_OPEN, tls=None):
        self.root = Path(root)
        self.port = free_port()
        self.uri = f"ldap://127.0.0.1:{self.port}/"
        self.proc = None
        self.log = self.root / "slapd.log"
        (self.root / "db").mkdir(parents=True, exist_ok=True)
        self.conf = self.root / "slapd.conf"
        self.conf.write_text(CONF.format(schema=SCHEMA, modules=MODULES,
                                         root=self.root, suffix=SUFFIX,
                                         rootdn=ROOTDN, rootpw=ROOTPW,
                                         acl=acl))
        if tls is not None:  # (certificate file, key file): StartTLS
            text = self.conf.read_text().replace(
                "database mdb\n",
                f"TLSCertificateFile {tls[0]}\n"
                f"TLSCertificateKeyFile {tls[1]}\n"
                "database mdb\n", 1)
            self.conf.write_text(text)

    def start(self, timeout=15):
        # -d 0: stay in the foreground (no fork), so the PID is ours.
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [SLAPD, "-h", self.uri, "-f", str(self.conf), "-d", "0"],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("slapd exited with %s:\n%s" % (
                    self.proc.returncode, self.log.read_text()[-2000:]))
            if self._answers():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("slapd did not answer in %ss" % timeout)

    def _answers(self):
        p = subprocess.run(["ldapsearch", "-x", "-H", self.uri, "-b", "",
                            "-s", "base", "-LLL", "1.1"],
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=10)
        return p.returncode == 0

    def stop(self, timeout=15):
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout)
        self.proc = None

    def add(self, ldif: str):
        p = subprocess.run(["ldapadd", "-x", "-H", self.uri, "-D", ROOTDN,
                            "-w", ROOTPW], input=ldif.encode(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
        assert p.returncode == 0, "ldapadd failed: %s" % p.stderr.decode(
            "utf-8", "replace")
