#!/usr/bin/env python3
"""The service and the client of mem_pair.sh.

usage: mem_pair.py serve PORT DIR
       mem_pair.py shutfirst PORT DIR

serve: a TCP service on 127.0.0.1:PORT, a thread per connection, whose
first line says what to do:
  BULK N   send N pseudo-random bytes while reading what the client sends
           until its EOF; then close. Writes DIR/bulk.sent and
           DIR/bulk.got (sha256 and length of each way).
  HALF     read until the client's EOF, then answer "got N" (N: bytes
           after the line) and close: the client's half-close came through
           and the answer still goes back.
  SHUT     send "bye", shut down writing, then read until the client's
           EOF; write the byte count to DIR/shut.got.
  ECHO     (or anything else) echo lines, this one first, until EOF.

shutfirst: the client of SHUT (run with the shim): reads until the
service's EOF, then sends 100 lines and half-closes, and prints
"eof-after bye" when the EOF came right after "bye".
"""
import hashlib
import os
import socket
import sys
import threading


def readline(s):
    b = b""
    while not b.endswith(b"\n"):
        c = s.recv(1)
        if not c:
            break
        b += c
    return b.decode().strip()


def write_result(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def bulk(s, n, out):
    h_sent = hashlib.sha256()

    def sender():
        seed = hashlib.sha256(b"mem_pair").digest()
        left = n
        while left > 0:
            block = b"".join(hashlib.sha256(seed + i.to_bytes(4, "big"))
                             .digest() for i in range(2048))[:left]
            seed = hashlib.sha256(block[-32:]).digest()
            s.sendall(block)
            h_sent.update(block)
            left -= len(block)

    t = threading.Thread(target=sender)
    t.start()
    h_got, got = hashlib.sha256(), 0
    while True:
        b = s.recv(65536)
        if not b:
            break
        h_got.update(b)
        got += len(b)
    t.join()
    write_result(os.path.join(out, "bulk.sent"),
                 "%s %d\n" % (h_sent.hexdigest(), n))
    write_result(os.path.join(out, "bulk.got"),
                 "%s %d\n" % (h_got.hexdigest(), got))


def handle(s, out):
    try:
        cmd = readline(s).split()
        if not cmd:
            return
        if cmd[0] == "BULK":
            bulk(s, int(cmd[1]), out)
        elif cmd[0] == "HALF":
            n = 0
            while True:
                b = s.recv(65536)
                if not b:
                    break
                n += len(b)
            s.sendall(b"got %d\n" % n)
        elif cmd[0] == "SHUT":
            s.sendall(b"bye\n")
            s.shutdown(socket.SHUT_WR)
            n = 0
            while True:
                b = s.recv(65536)
                if not b:
                    break
                n += len(b)
            write_result(os.path.join(out, "shut.got"), "%d\n" % n)
        else:
            # ECHO, or session.py's "ping N": echo lines until EOF.
            s.sendall((" ".join(cmd) + "\n").encode())
            f = s.makefile("rb")
            for line in f:
                s.sendall(line)
    except OSError:
        pass
    finally:
        s.close()


def serve(port, out):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(128)
    while True:
        s, _ = ls.accept()
        threading.Thread(target=handle, args=(s, out), daemon=True).start()


def shutfirst(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"SHUT\n")
    got = b""
    while True:
        b = s.recv(100)
        if not b:
            break
        got += b
    # The service shut down its side; ours still carries bytes.
    s.sendall(b"after the service's EOF\n" * 100)
    s.shutdown(socket.SHUT_WR)
    s.settimeout(10)
    rest = s.recv(100)
    s.close()
    if got == b"bye\n" and rest == b"":
        print("eof-after bye")
    else:
        print("got %r then %r" % (got, rest))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3])
    elif sys.argv[1] == "shutfirst":
        shutfirst(int(sys.argv[2]))
