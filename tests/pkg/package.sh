#!/bin/bash
# The Debian package as a new user gets it: in a brand-new Debian 12 root
# (../shared/tools/fresh-root: minbase + git + make, a clean clone of this
# repository's committed HEAD), `make deb` (installs its build
# dependencies, builds, lintian), install the .deb, run the getting-started
# walkthrough against the installed files (tests/pkg/in-root.sh), upgrade,
# remove, purge, and check that nothing is left but what Debian keeps.
# Root; several minutes (apt and a build): `make test-package`, CI.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
fr=${FRESH_ROOT:-}
for c in "$top/../shared/tools/fresh-root" /work/shared/tools/fresh-root; do
	[ -n "$fr" ] || { [ -x "$c" ] && fr=$c; }
done
if [ -z "$fr" ]; then
	echo "SKIP: no fresh-root tool (../shared/tools/fresh-root)"
	exit 77
fi
[ "$(id -u)" = 0 ] || { echo "package.sh: needs root (fresh-root)"; exit 1; }
cd "$top" || exit 1
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	echo "# note: fresh-root clones the committed HEAD; uncommitted changes are not tested"
fi
# timeout: apt, a build and the walkthrough; bounded so CI never hangs here.
timeout 1500 "$fr" -- 'bash tests/pkg/in-root.sh'
rc=$?
[ $rc = 0 ] || echo "package test FAILED (exit $rc)"
exit $rc
