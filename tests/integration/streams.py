#!/usr/bin/env python3
"""Clients and services for tests/integration/streams.sh.

usage: streams.py MODE PORT [N [SIZE]]

Services (127.0.0.1:PORT, one thread per connection, until killed):
  sink      reads until end of stream, then answers "<sha256> <length>\\n"
            and closes: the request's end (a half close) must arrive
  greet     speaks first ("220 greet\\n"), then echoes one line and closes

Clients (to 127.0.0.1:PORT, N connections one after another; run them with
the shim preloaded to go through the mesh). Each prints one JSON line
{"ok": n, "bad": n, "errors": {...}} and exits 0 when every one was right:
  echo      sends "line <i> <random>\\n", expects it back, closes
  halfclose sends SIZE random bytes, shuts down writing, expects the
            sink's hash and length of exactly those bytes
  greeting  expects the greeting before it sends anything, then a line
  abort     sends a line, then resets the connection (SO_LINGER 0)
"""
import hashlib
import json
import os
import socket
import struct
import sys
import threading

mode, port = sys.argv[1], int(sys.argv[2])
n = int(sys.argv[3]) if len(sys.argv) > 3 else 1
size = int(sys.argv[4]) if len(sys.argv) > 4 else 0


def serve(handler):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(128)
    while True:
        c, _ = s.accept()
        threading.Thread(target=handler, args=(c,), daemon=True).start()


def sink(c):
    h, total = hashlib.sha256(), 0
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            h.update(d)
            total += len(d)
        c.sendall(("%s %d\n" % (h.hexdigest(), total)).encode())
    except OSError:
        pass
    c.close()


def greet(c):
    try:
        c.sendall(b"220 greet\n")
        f = c.makefile("rb")
        c.sendall(f.readline())
    except OSError:
        pass
    c.close()


def recv_line(c):
    buf = b""
    while not buf.endswith(b"\n"):
        d = c.recv(4096)
        if not d:
            break
        buf += d
    return buf


def one(i):
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        if mode == "echo":
            line = ("line %d %s\n" % (i, os.urandom(8).hex())).encode()
            c.sendall(line)
            got = recv_line(c)
            return got == line, "echo %r" % got[:40]
        if mode == "halfclose":
            data = os.urandom(size)
            c.sendall(data)
            c.shutdown(socket.SHUT_WR)
            got = recv_line(c)
            want = ("%s %d\n" % (hashlib.sha256(data).hexdigest(),
                                 size)).encode()
            return got == want, "sink said %r" % got[:40]
        if mode == "greeting":
            hello = recv_line(c)
            if hello != b"220 greet\n":
                return False, "greeting %r" % hello[:40]
            c.sendall(b"after greeting\n")
            got = recv_line(c)
            return got == b"after greeting\n", "echo %r" % got[:40]
        if mode == "abort":
            c.sendall(b"abort me\n")
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
            return True, ""
    finally:
        c.close()
    return False, "unknown mode"


def main():
    if mode in ("sink", "greet"):
        serve(sink if mode == "sink" else greet)
    res = {"ok": 0, "bad": 0, "errors": {}}
    for i in range(n):
        try:
            good, why = one(i)
        except OSError as e:
            good, why = False, str(e)
        if good:
            res["ok"] += 1
        else:
            res["bad"] += 1
            res["errors"][why] = res["errors"].get(why, 0) + 1
    print(json.dumps(res))
    sys.exit(0 if res["bad"] == 0 else 1)


main()
