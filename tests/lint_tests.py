#!/usr/bin/env python3
"""Refuse test idioms that let a bug through (issue 21).

    tests/lint_tests.py [ROOT]    (ROOT: the source tree, default ..)

Scans the shell scripts under tests/, examples/ and bench/ for:

  * a `check "desc" cmd...` call followed, on its logical line, by an
    unquoted `&&`, `||`, `|` or `;`: `check` runs one command, so
    `check "d" [ A ] && [ B ]` tests A alone (use check_expr);
  * `$(grep -c ... || echo 0)`: grep -c already prints 0, and the
    `|| echo 0` adds a second line.

Exit 1 with file:line: reason for each hit, 0 when there is none.
"""
import os
import re
import shlex
import sys

OPS = {"&&", "||", "|", ";", "|&"}


def strip_subst(s):
    """Drop $( ... ) and `...` (balanced), quoted or not: their insides
    are another command line."""
    out, i, n = [], 0, len(s)
    while i < n:
        if s.startswith("$(", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if s[j] == "(":
                    depth += 1
                elif s[j] == ")":
                    depth -= 1
                j += 1
            out.append("X")
            i = j
        elif s[i] == "`":
            j = s.find("`", i + 1)
            out.append("X")
            i = n if j < 0 else j + 1
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def logical_lines(text):
    """(first line number, joined text) with backslash continuations."""
    buf, start = "", None
    for no, line in enumerate(text.split("\n"), 1):
        if start is None:
            start = no
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        yield start, buf + line
        buf, start = "", None


def tokens(line):
    lex = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lex.whitespace_split = True
    lex.commenters = "#"
    try:
        return list(lex)
    except ValueError:  # an unclosed quote: a heredoc body, not code
        return None


def check_file(path, rel):
    hits = []
    text = open(path, encoding="utf-8", errors="replace").read()
    for no, line in logical_lines(text):
        code = line.strip()
        if not code or code.startswith("#"):
            continue
        if re.search(r"grep -c[^|)]*\|\|\s*echo 0", line):
            hits.append((rel, no, "`grep -c ... || echo 0` prints two lines "
                         "when nothing matches (grep -c already prints 0)"))
        toks = tokens(strip_subst(line))
        if not toks:
            continue
        # Find each command position that is `check`.
        cmd_start = True
        for i, t in enumerate(toks):
            if t in OPS or t in ("&", "then", "do", "else", "{", "!"):
                cmd_start = True
                continue
            if cmd_start and t == "check":
                rest = toks[i + 1:]
                # the check's own command ends at the first operator
                if any(r in OPS for r in rest):
                    op = next(r for r in rest if r in OPS)
                    if op == "&&" or op == "||" or op == "|" or op == "|&":
                        hits.append((rel, no, "`check` tests one command; "
                                     "what follows `%s` is not tested "
                                     "(use check_expr)" % op))
                    elif op == ";":
                        after = rest[rest.index(";") + 1:]
                        if after and after[0] in ("then", "do", "fi", "done"):
                            continue
                break
            cmd_start = t in ("if", "while", "until", "then", "do", "else",
                              "elif")
    return hits


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..")
    hits, n = [], 0
    for top in ("tests", "examples", "bench"):
        for d, _, files in os.walk(os.path.join(root, top)):
            for f in sorted(files):
                if not f.endswith(".sh"):
                    continue
                p = os.path.join(d, f)
                n += 1
                hits += check_file(p, os.path.relpath(p, root))
    for rel, no, why in hits:
        print("%s:%d: %s" % (rel, no, why))
    print("lint_tests: %d shell scripts, %d problem(s)" % (n, len(hits)))
    return 1 if hits else 0


if __name__ == "__main__":
    sys.exit(main())
