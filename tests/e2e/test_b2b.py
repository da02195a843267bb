"""The seed's scenarios end to end (seed 002, issue 5): B2B -- two
smimegate instances as company A (example.com) and company B
(example.org), each with a domain certificate; mail from A to B is signed
and encrypted at A's gateway and arrives at B's user decrypted and
verified, and back.  B2C -- A's mail to a consumer whose certificate A
holds arrives signed and encrypted and `openssl cms` opens it with the
consumer's key; the consumer's signed and encrypted mail to A arrives
decrypted."""
import smtplib
import subprocess

from gateway_util import T, crlf, swaks
from smime_util import openssl_sign


def domain_cert(gw, name, cn, domain):
    gw.cli("cert", "create", "--name", name, "--cn", cn, "--san-domain",
           domain)
    pem = gw.root / f"{name}.pem"
    pem.write_bytes(gw.cli("cert", "export", name, "--pem").stdout)
    return pem


def company(gateway, domain, other_port, other_domain):
    """A gateway for DOMAIN: its own domain certificate signs and opens
    mail; OTHER_DOMAIN is routed to the other company's incoming
    listener."""
    gw = gateway(profile="mode = sign-encrypt\nmissing_key = bounce\n",
                 extra=f"\n[route partner]\ndomains = {other_domain}\n"
                       f"nexthop = 127.0.0.1:{other_port}\ntls = none\n")
    text = gw.conf.read_text()
    text = text.replace("local_domains = example.org",
                        f"local_domains = {domain}")
    text = text.replace("signer = org", "signer = domain")
    # B's users get a plain message: the verified signature is removed.
    text = text.replace("role = incoming\n",
                        "role = incoming\nsignature = remove\n")
    gw.conf.write_text(text)
    return gw, domain_cert(gw, "domain", f"{domain} mail gateway", domain)


def test_b2b_both_ways(gateway):
    # Ports first: each gateway routes to the other's incoming listener.
    a, a_pem = company(gateway, "example.com", 0, "example.org")
    b, b_pem = company(gateway, "example.org", a.in_port, "example.com")
    a.conf.write_text(a.conf.read_text().replace(
        "nexthop = 127.0.0.1:0", f"nexthop = 127.0.0.1:{b.in_port}"))
    # Each trusts the other's certificate and encrypts to it.
    a.cli("key", "add", "company-b", b_pem)
    a.cli("ca", "import", b_pem)
    b.cli("key", "add", "company-a", a_pem)
    b.cli("ca", "import", a_pem)
    a.start()
    b.start()

    r = swaks(a.out_port, "--from", "alice@example.com", "--to",
              "bob@example.org", "--header", "Subject: order 42",
              "--body", "Please ship order 42.")
    assert r.returncode == 0, r.stdout.decode()
    (got,) = b.delivered()
    head, body = got.split(b"\r\n\r\n", 1)
    assert b"Please ship order 42." in got
    assert b"pkcs7" not in got  # decrypted, the signature removed
    assert b"smime=pass" in head
    assert "event=signed+encrypted" in a.log.read_text()
    blog = b.log.read_text()
    assert "event=decrypted" in blog and "result=pass" in blog

    r = swaks(b.out_port, "--from", "bob@example.org", "--to",
              "alice@example.com", "--header", "Subject: re: order 42",
              "--body", "Shipped.")
    assert r.returncode == 0, r.stdout.decode()
    (back,) = a.delivered()
    assert b"Shipped." in back and b"smime=pass" in back
    assert b"application/pkcs7-mime" not in back


def test_b2c_both_ways(gateway, pki):
    gw = gateway(profile="mode = sign-encrypt\nmissing_key = bounce\n")
    gw.conf.write_text(gw.conf.read_text().replace(
        "local_domains = example.org", "local_domains = example.com"))
    # The consumer's certificate (Dave, dave@example.net); the consumer's
    # CA is trusted for mail coming in.
    gw.cli("key", "add", "dave", pki / "dave.pem")
    gw.cli("ca", "import", pki / "root.pem")
    org = gw.root / "org.pem"
    org.write_bytes(gw.cli("cert", "export", "org", "--pem").stdout)
    gw.start()

    r = swaks(gw.out_port, "--to", "dave@example.net", "--body",
              "Your statement is ready.")
    assert r.returncode == 0, r.stdout.decode()
    (out,) = gw.delivered()
    dec = subprocess.run(["openssl", "cms", "-decrypt", "-recip",
                          pki / "dave.pem", "-inkey", pki / "dave.key"],
                         input=out, capture_output=True, timeout=T)
    assert dec.returncode == 0, dec.stderr.decode()
    ver = subprocess.run(["openssl", "cms", "-verify", "-CAfile", org],
                         input=dec.stdout, capture_output=True, timeout=T)
    assert ver.returncode == 0, ver.stderr.decode()
    assert b"Your statement is ready." in ver.stdout

    # The consumer answers, signed (Alice's certificate from the test
    # CA stands for the consumer) and encrypted to the organization.
    signed = openssl_sign(pki, b"Content-Type: text/plain\r\n\r\n"
                               b"Thank you.\r\n", subject=None, from_=None,
                          to=None)
    sealed = subprocess.run(
        ["openssl", "cms", "-encrypt", "-aes256", "-from",
         "alice@example.com", "-to", "sender@example.com", "-subject",
         "re: statement", org],
        input=signed, capture_output=True, timeout=T, check=True).stdout
    with smtplib.SMTP("127.0.0.1", gw.in_port, timeout=T) as s:
        s.sendmail("alice@example.com", ["sender@example.com"],
                   crlf(sealed))
    msgs = gw.delivered(2)
    (reply,) = [m for m in msgs if b"Thank you." in m]
    assert b"application/pkcs7-mime" not in reply
    assert b"smime=pass" in reply
    assert "alice@example.com" in reply.decode(errors="replace")
