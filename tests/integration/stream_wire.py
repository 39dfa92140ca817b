#!/usr/bin/env python3
"""The stream protocol on the wire (helperd/relay/relay_stream.c), spoken
by hand to a helperd's mesh port with a real leaf.

usage: stream_wire.py HOST PORT SNI CERT KEY ROOTS MESHCTL

Prints one line per check ("ok - ..." or "FAIL - ..."), exits 1 if any
failed. The destination behind SNI must be an echo service that closes
after its input ends (socat ... exec:/bin/cat).
"""
import socket
import ssl
import struct
import subprocess
import sys
import time

host, port, sni, cert, key, roots, meshctl = sys.argv[1:8]
port = int(port)
ALPN = "meshshim-stream/1"
failed = 0


def report(good, what):
    global failed
    print(("ok   - " if good else "FAIL - ") + what)
    if not good:
        failed += 1


def session(alpn=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False          # the leaf names a SPIFFE URI
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(roots)
    if alpn:
        ctx.set_alpn_protocols([ALPN])
    s = socket.create_connection((host, port), timeout=5)
    return ctx.wrap_socket(s, server_hostname=sni)


def frame(t, data=b"", length=None):
    n = len(data) if length is None else length
    return t + struct.pack(">I", n)[1:] + data


def exact(s, n):
    buf = b""
    while len(buf) < n:
        d = s.recv(n - len(buf))
        if not d:
            raise EOFError("session ended")
        buf += d
    return buf


def next_frame(s):
    h = exact(s, 4)
    n = struct.unpack(">I", b"\0" + h[1:])[0]
    return h[:1], exact(s, n) if h[:1] != b"D" else n


def stream(s, payload):
    """One stream: expects R, sends payload and F, gathers data until F.
    Returns the echoed bytes."""
    t, _ = next_frame(s)
    if t != b"R":
        raise ValueError("first frame %r, not R" % t)
    s.sendall(frame(b"D", payload) + frame(b"F"))
    got = b""
    while True:
        t, n = next_frame(s)
        if t == b"F":
            return got
        if t != b"D":
            raise ValueError("frame %r in a stream" % t)
        got += exact(s, n)


def ends(s):
    """Does the peer end the session (EOF or reset) within 5 s?"""
    try:
        while s.recv(4096):
            pass
        return True
    except (ConnectionError, ssl.SSLError, EOFError):
        return True
    except socket.timeout:
        return False


s = session()
report(s.selected_alpn_protocol() == ALPN,
       "helperd agrees on ALPN %s (got %r)" % (ALPN, s.selected_alpn_protocol()))
try:
    got = stream(s, b"first stream\n")
    report(got == b"first stream\n", "first stream: R, the echo, F (%r)" % got)
    s.sendall(frame(b"O"))
    big = bytes(range(256)) * 1024                # 256 KiB, one frame
    got = stream(s, big)
    report(got == big, "second stream on the same session after O: "
           "256 KiB echoed intact (%d bytes)" % len(got))
    s.sendall(frame(b"O"))
    got = stream(s, b"third\n")
    report(got == b"third\n", "third stream (%r)" % got)
except (ValueError, EOFError, OSError) as e:
    report(False, "streams on one session: %s" % e)
s.close()

# Frames helperd must refuse: the session ends, nothing else happens.
bad = [
    ("an unknown frame type", frame(b"Z")),
    ("an empty data frame", frame(b"D")),
    ("a refusal sent by a client", frame(b"X", b"no")),
    ("O in the middle of a stream", frame(b"D", b"x") + frame(b"O")),
    ("F with a length", frame(b"F", b"xyz")),
]
for what, data in bad:
    s = session()
    try:
        t, _ = next_frame(s)
        s.sendall(data)
        report(t == b"R" and ends(s), "%s ends the session" % what)
    except (EOFError, OSError) as e:
        report(False, "%s: %s" % (what, e))
    s.close()

# Between streams, anything but O ends the session too.
s = session()
try:
    stream(s, b"x")
    s.sendall(frame(b"D", b"no open first"))
    report(ends(s), "data without O between streams ends the session")
except (ValueError, EOFError, OSError) as e:
    report(False, "data without O: %s" % e)
s.close()

# A deny made while a session waits between streams: its next stream is
# refused with the reason (X), then the session ends.
def says(what):
    out = subprocess.run([meshctl, "intention", "check", "web", "socat"],
                         capture_output=True, text=True).stdout.strip()
    return out == what


s = session()
try:
    stream(s, b"before the deny\n")
    subprocess.run([meshctl, "intention", "create", "-deny", "web", "socat"],
                   check=True, capture_output=True)
    for _ in range(50):
        if says("Denied"):
            break
        time.sleep(0.1)
    s.sendall(frame(b"O"))
    t, why = next_frame(s)
    report(t == b"X" and b"deny" in why,
           "after a deny, O on a waiting session is refused: %r %r" % (t, why))
    report(ends(s), "... and the session ends")
except (ValueError, EOFError, OSError, subprocess.CalledProcessError) as e:
    report(False, "a deny between streams: %s" % e)
finally:
    subprocess.run([meshctl, "intention", "delete", "web", "socat"],
                   capture_output=True)
    for _ in range(50):
        if says("Allowed"):
            break
        time.sleep(0.1)
s.close()

# Without the ALPN the session is one plain connection, as before.
s = session(alpn=False)
report(s.selected_alpn_protocol() is None, "without ALPN none is chosen")
s.sendall(b"plain bytes\n")
report(exact(s, 12) == b"plain bytes\n", "... and the bytes are the stream")
s.close()

s = session()
try:
    got = stream(s, b"still here\n")
    report(got == b"still here\n", "a good session after all that")
except (ValueError, EOFError, OSError) as e:
    report(False, "a good session after all that: %s" % e)
sys.exit(1 if failed else 0)
