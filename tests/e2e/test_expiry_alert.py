"""The certificate-expiry alert through the running daemon: one of our
certificates that expires within alert_cert_expiry (or has expired)
raises exactly one alert at start (log, metrics, the admin's mailbox)
naming it, its subject, notAfter and the days left; one valid for a year
raises none, nor does anything with alert_cert_expiry = 0 (until a reload
turns it on); checks every second still alert once a day per
certificate."""
import json
import re
import signal
import time
import urllib.request

from gateway_util import T, free_port, wait_log

ADMIN = "admin@example.com"
KIND = "event=alert kind=certificate-expiry"
CHECKED = "event=cert-expiry-checked"


def expiry_gateway(gateway, extra=""):
    """A gateway mailing alerts to ADMIN, with metrics; "org" (the
    fixture's, valid for a year) is its only certificate so far."""
    metrics = free_port()
    gw = gateway(extra=f"alert_to = {ADMIN}\nmetrics = 127.0.0.1:{metrics}\n"
                       + extra)
    gw.metrics_port = metrics
    return gw


def add_expiring(gw, name="soon", cn="Soon Org", days=5):
    gw.cli("cert", "create", "--name", name, "--cn", cn,
           "--san-email", f"{name}@example.com", "--days", str(days))


def show(gw, name):
    return json.loads(gw.cli("cert", "show", name, "--json").stdout)


def alert_lines(gw):
    return [l for l in gw.log.read_text().splitlines() if KIND in l]


def alerts_total(gw):
    body = urllib.request.urlopen(
        f"http://127.0.0.1:{gw.metrics_port}/metrics", timeout=T).read()
    m = re.search(rb"^smimegate_alerts_total (\d+)$", body, re.M)
    assert m, body
    return int(m.group(1))


def admin_mail(gw, n):
    """The N alerts in the admin's mailbox (the outbox: no smarthost)."""
    msgs = gw.delivered(n)
    return [m for m in msgs if f"Delivered-To: {ADMIN}".encode() in m]


def test_expiring_certificate_raises_one_alert(gateway):
    gw = expiry_gateway(gateway, "alert_cert_expiry = 30d\n")
    add_expiring(gw)
    na = show(gw, "soon")["not_after"]
    gw.start()
    wait_log(gw, CHECKED)
    lines = alert_lines(gw)
    assert len(lines) == 1, gw.log.read_text()
    line = lines[0]
    assert "certificate 'soon'" in line
    assert "subject CN=Soon Org" in line
    assert f"expires on {na}" in line
    # 5 days from its creation, less the seconds since
    assert re.search(r"\(days left: [45]\)", line), line
    assert "smimegate cert csr" in line and "smimegate cert import" in line
    # "org", valid for a year, raises none
    assert "'org'" not in gw.log.read_text()
    assert f"{CHECKED} ours=2 expiring=1 alerted=1" in gw.log.read_text()
    assert alerts_total(gw) == 1
    mail = admin_mail(gw, 1)
    assert len(mail) == 1
    assert b"Subject: [smimegate alert] certificate-expiry on gw.test" \
        in mail[0]
    assert b"'soon'" in mail[0] and na.encode() in mail[0]
    assert b"'org'" not in mail[0]


def test_expired_certificate_alerts_too(gateway, pki):
    # the default window (30 days); alerts signed like notifications
    gw = expiry_gateway(gateway, "notify_signer = org\n")
    gw.cli("cert", "import", pki / "expired.pem", "--key",
           pki / "expired.key", "--name", "old", "--force")
    add_expiring(gw, "soon", "Soon Org", 20)
    gw.start()
    wait_log(gw, CHECKED)
    lines = alert_lines(gw)
    assert len(lines) == 2, gw.log.read_text()
    old = [l for l in lines if "certificate 'old'" in l]
    assert len(old) == 1
    assert "expired on 2021-01-01T00:00:00Z" in old[0]
    assert re.search(r"days left: -\d+\)", old[0]), old[0]
    assert "no longer signs" in old[0]
    assert sum("certificate 'soon'" in l for l in lines) == 1
    assert alerts_total(gw) == 2
    mail = admin_mail(gw, 2)
    assert len(mail) == 2
    assert all(b"application/pkcs7-signature" in m for m in mail)
    wait_log(gw, "kind=certificate-expiry to=<admin@example.com> "
                 "signed=yes", 2)


def test_renewed_certificate(gateway):
    """A renewal (same subject, valid for a year) silences the old
    certificate, unless a profile names the old one as its signer."""
    gw = expiry_gateway(gateway, "alert_cert_expiry = 30d\n")
    add_expiring(gw, "lab", "Lab", 5)
    add_expiring(gw, "lab-2", "Lab", 365)
    add_expiring(gw, "sales", "Sales", 5)
    add_expiring(gw, "sales-2", "Sales", 365)
    gw.conf.write_text(gw.conf.read_text()
                       + "\n[profile sales]\nsigner = sales\n")
    gw.start()
    wait_log(gw, CHECKED)
    lines = alert_lines(gw)
    assert len(lines) == 1, gw.log.read_text()
    assert "certificate 'sales'" in lines[0]
    assert ("renewed by 'sales-2', but [profile sales] signer names "
            "'sales': set it to 'sales-2'") in lines[0]
    assert "'lab'" not in gw.log.read_text()
    assert f"{CHECKED} ours=5 expiring=1 alerted=1" in gw.log.read_text()


def test_a_year_raises_none(gateway):
    gw = expiry_gateway(gateway, "alert_cert_expiry = 30d\n"
                                 "alert_cert_expiry_check = 1s\n")
    add_expiring(gw, "spare", "Spare Org", 365)
    gw.start()
    wait_log(gw, CHECKED, 2)
    assert f"{CHECKED} ours=2 expiring=0 alerted=0" in gw.log.read_text()
    assert alert_lines(gw) == []
    assert alerts_total(gw) == 0


def test_off_raises_none_until_a_reload_turns_it_on(gateway):
    gw = expiry_gateway(gateway, "alert_cert_expiry = 0\n"
                                 "alert_cert_expiry_check = 1s\n")
    add_expiring(gw)
    gw.start()
    wait_log(gw, "event=started")
    time.sleep(2.5)  # two intervals
    log = gw.log.read_text()
    assert KIND not in log and CHECKED not in log, log
    assert alerts_total(gw) == 0
    # on by a reload: checked at once
    gw.conf.write_text(gw.conf.read_text().replace(
        "alert_cert_expiry = 0\n", "alert_cert_expiry = 30d\n"))
    gw.proc.send_signal(signal.SIGHUP)
    wait_log(gw, "event=reloaded")
    wait_log(gw, KIND)
    assert len(alert_lines(gw)) == 1
    assert len(admin_mail(gw, 1)) == 1


def test_checks_every_second_alert_once(gateway):
    gw = expiry_gateway(gateway, "alert_cert_expiry = 30d\n"
                                 "alert_cert_expiry_check = 1s\n")
    add_expiring(gw, "soon", "Soon Org", 5)
    add_expiring(gw, "later", "Later Org", 10)
    gw.start()
    wait_log(gw, KIND, 2)
    time.sleep(3)
    wait_log(gw, CHECKED, 3)  # the checks went on ...
    log = gw.log.read_text()
    assert log.count(f"{CHECKED} ours=3 expiring=2 alerted=0") >= 2, log
    lines = alert_lines(gw)  # ... and alerted once per certificate
    assert len(lines) == 2, log
    assert sum("certificate 'soon'" in l for l in lines) == 1
    assert sum("certificate 'later'" in l for l in lines) == 1
    assert alerts_total(gw) == 2
    assert len(admin_mail(gw, 2)) == 2
    time.sleep(1)  # nothing more arrives
    assert len(admin_mail(gw, 2)) == 2
    # a clean stop (ASan's leak check runs at exit; the fixture reads
    # the log for its report)
    assert gw.stop() == 0
    assert "Sanitizer" not in gw.log.read_text()
