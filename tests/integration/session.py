#!/usr/bin/env python3
"""Hold one TCP session open and echo-check it.

usage: session.py PORT SECONDS OUT [INTERVAL]

Connects to 127.0.0.1:PORT (run it with the shim preloaded to go through
the mesh), sends "ping N" every INTERVAL seconds (default 0.1) and expects
the same line back. Stops after SECONDS or when the connection ends, then
writes a JSON summary to OUT: pings answered, pings lost, and the wall
clock time (time.time()) at which the connection was closed under it, if
it was. Exit 0 when every ping was answered and the session lasted.
"""
import json
import socket
import sys
import time

port, seconds, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
interval = float(sys.argv[4]) if len(sys.argv) > 4 else 0.1
res = {"ok": 0, "bad": 0, "closed_at": None, "reason": None,
       "started": time.time()}


def save():
    with open(out + ".tmp", "w") as f:
        json.dump(res, f)
    import os
    os.replace(out + ".tmp", out)


try:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
except OSError as e:
    res["reason"] = "connect: %s" % e
    res["closed_at"] = time.time()
    save()
    sys.exit(1)
s.settimeout(2)
f = s.makefile("rb")
end = time.time() + seconds
n = 0
save()
while time.time() < end:
    n += 1
    line = b"ping %d\n" % n
    try:
        s.sendall(line)
        back = f.readline()
    except OSError as e:
        res["closed_at"] = time.time()
        res["reason"] = str(e)
        break
    if back == b"":
        res["closed_at"] = time.time()
        res["reason"] = "end of stream"
        break
    if back == line:
        res["ok"] += 1
    else:
        res["bad"] += 1
    save()
    time.sleep(interval)
save()
sys.exit(0 if res["closed_at"] is None and res["bad"] == 0 else 1)
