"""`make install` into a staging root (DESTDIR): the binary, the systemd
unit with that PREFIX's paths, the docs; and the unit as systemd reads it
(`systemd-analyze verify`: no unknown key, no missing program)."""
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
T = 120


def install(smimegate, dest, prefix="/usr/local"):
    r = subprocess.run(["make", "-s", "-C", str(REPO), "install",
                        f"DESTDIR={dest}", f"PREFIX={prefix}",
                        f"INSTALL_BIN={smimegate}"],
                       capture_output=True, timeout=T)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()


def mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def test_install_puts_binary_unit_and_docs_under_prefix(smimegate, tmp_path):
    install(smimegate, tmp_path, prefix="/opt/sg")
    root = tmp_path / "opt" / "sg"
    binary = root / "bin" / "smimegate"
    assert mode(binary) == 0o755
    r = subprocess.run([binary, "--version"], capture_output=True,
                       timeout=T)
    assert r.returncode == 0 and r.stdout.startswith(b"smimegate ")
    unit = root / "lib" / "systemd" / "system" / "smimegate.service"
    assert mode(unit) == 0o644
    text = unit.read_text()
    assert "@" not in text.replace("$MAINPID", "")
    assert ("ExecStart=/opt/sg/bin/smimegate serve -c "
            "/etc/smimegate/smimegate.conf\n") in text
    assert ("ExecStartPre=/opt/sg/bin/smimegate check-config -c "
            "/etc/smimegate/smimegate.conf\n") in text
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE\n" in text
    assert "User=smimegate\n" in text
    docs = root / "share" / "doc" / "smimegate"
    assert (docs / "daemon.md").is_file() and (docs / "README.md").is_file()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze (package systemd) is not here")
def test_systemd_reads_the_unit_without_a_complaint(smimegate, tmp_path):
    install(smimegate, tmp_path)
    unit = tmp_path / "usr/local/lib/systemd/system/smimegate.service"
    staged = tmp_path / "smimegate.service"
    # verify wants the programs where the unit says: the staged ones
    staged.write_text(unit.read_text().replace(
        "/usr/local/bin/", f"{tmp_path}/usr/local/bin/"))
    r = subprocess.run(["systemd-analyze", "verify", str(staged)],
                       capture_output=True, timeout=T)
    assert r.returncode == 0, r.stderr.decode()
    # (other units of the machine may have their own complaints)
    ours = [ln for ln in r.stderr.decode().splitlines()
            if "smimegate" in ln]
    assert ours == [], r.stderr.decode()
    # and it would complain: a misspelt key is seen
    staged.write_text(staged.read_text().replace("ProtectHome=",
                                                 "ProtectHomme="))
    r = subprocess.run(["systemd-analyze", "verify", str(staged)],
                       capture_output=True, timeout=T)
    assert "ProtectHomme" in r.stderr.decode()
