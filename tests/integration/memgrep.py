#!/usr/bin/env python3
"""Search a live process's memory for a private key.

usage: memgrep.py PID KEYFILE

KEYFILE is a PEM EC private key. Looks in every readable mapping of PID
for: each base64 line of the PEM, the DER of the key, and its 32-byte
private scalar (big-endian, as in the DER, and byte-reversed, as bignum
libraries keep it in little-endian limbs). Prints what it found; exit 0
when nothing was found, 1 when something was, 2 on error.
"""
import base64, re, subprocess, sys

pid, keyfile = int(sys.argv[1]), sys.argv[2]
pem = open(keyfile).read()
body = [l for l in pem.splitlines() if l and not l.startswith("-----")]
der = base64.b64decode("".join(body))
txt = subprocess.run(["openssl", "pkey", "-in", keyfile, "-text", "-noout"],
                     capture_output=True, text=True, check=True).stdout
m = re.search(r"priv:\s*((?:[0-9a-f]{2}:?\s*)+)pub:", txt)
if not m:
    print("cannot read the private scalar of %s" % keyfile); sys.exit(2)
d = bytes.fromhex(re.sub(r"[^0-9a-f]", "", m.group(1)))
d = d[-32:] if len(d) > 32 else d.rjust(32, b"\0")
needles = {"DER of the key": der, "private scalar": d,
           "private scalar (reversed)": d[::-1]}
for i, l in enumerate(body):
    if len(l) >= 40:
        needles["PEM line %d" % (i + 1)] = l.encode()
found = set()
scanned = 0
with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
    for line in maps:
        f = line.split()
        if "r" not in f[1]:
            continue
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        if hi - lo > (1 << 31):   # ASan's shadow and reserved ranges
            continue
        try:
            mem.seek(lo)
            buf = mem.read(hi - lo)
        except (OSError, ValueError, OverflowError):
            continue
        scanned += len(buf)
        for name, n in needles.items():
            if n in buf:
                found.add(name)
print("scanned %.1f MiB of pid %d: %s" % (scanned / 1048576.0, pid,
      ", ".join(sorted(found)) if found else "no trace of the key"))
sys.exit(1 if found else 0)
