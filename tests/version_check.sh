#!/bin/bash
# The version is typed once, in meson.build's project(version:): config.h
# carries it to helperd, meshctl and the API. This checks that
# debian/changelog names the same version, that both programs print it,
# and that no source or doc file types it again.
#   version_check.sh VERSION SRCROOT HELPERD MESHCTL
set -u
V=$1 SRC=$2 HELPERD=$3 MESHCTL=$4
fail=0
bad() { echo "FAIL - $*"; fail=1; }

deb=$(sed -n '1s/^meshshim (\([^)]*\)).*/\1/p' "$SRC/debian/changelog")
[ "${deb%%-*}" = "$V" ] || bad "debian/changelog's first entry is $deb, meson.build says $V"
out=$("$HELPERD" -version)
[ "$out" = "helperd v$V" ] || bad "helperd -version printed '$out'"
out=$("$MESHCTL" version)
[ "$out" = "meshctl v$V" ] || bad "meshctl version printed '$out'"
out=$("$MESHCTL" -version)
[ "$out" = "meshctl v$V" ] || bad "meshctl -version printed '$out'"
# Typed again anywhere (meson.build and the changelog aside)?
hits=$(cd "$SRC" && grep -rnF "$V" --exclude-dir='build*' --exclude-dir=.git \
    --include='*.c' --include='*.h' --include='*.md' --include='*.py' \
    --include='*.sh' --include='*.js' --include='*.html' --include='*.scd' \
    --include='*.in' --include=control --include=Makefile . |
    grep -v -e "[0-9]$V" -e "$V[0-9]" -e '^./tests/version_check.sh:')
[ -z "$hits" ] || bad "version $V typed outside meson.build: $hits"
[ "$fail" = 0 ] && echo "version $V: changelog, helperd, meshctl agree; typed once"
exit "$fail"
