#!/bin/bash
# bench/obs_micro.sh BUILD_DIR [RUNS] — bench/obs_micro.c against that
# build's libhelperd_core.a: the CPU time one access log line and one
# /proc unit read cost helperd's threads (see obs_micro.c). CPU time, not
# wall time: meaningful on a machine busy with other work. RUNS [5].
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=$(cd "$1" && pwd)
# The build's own sources (its accesslog.h), which may be another tree.
SRC=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["directories"]["source"])' \
    "$BUILD/meson-info/meson-info.json")
T=$(mktemp -d /tmp/obsmicro.XXXXXX)
trap 'rm -rf "$T"' EXIT
ninja -C "$BUILD" helperd/libhelperd_core.a common/libcommon.a >/dev/null
cc -O2 -Wall -Wextra -D_GNU_SOURCE -I"$SRC" -I"$BUILD" -o "$T/obs_micro" "$HERE/obs_micro.c" \
    "$BUILD/helperd/libhelperd_core.a" "$BUILD/common/libcommon.a" \
    $(pkg-config --libs jansson gnutls) -lpthread
for _ in $(seq "${2:-5}"); do
	rm -f "$T/access.log"
	"$T/obs_micro" "$T/access.log" 4000 300
done
