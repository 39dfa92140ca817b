#!/bin/bash
# data_dir must be owned by helperd's user and not group/world-writable
# (keys, CA and intentions live there): helperd refuses to start on one
# and -check says so, naming the directory and why. The attack it stops is
# shown in symlink_tmp.sh (a file planted by another user).
. "$(dirname "$0")/sock_lib.sh"

refused() { # refused NAME MODE OWNER WORD: start and -check both refuse
	n=$1
	write_conf "$n"
	mkdir -p "$T/$n/data"; chmod "$2" "$T/$n/data"; chown "$3" "$T/$n/data"
	"$HELPERD" -c "$T/$n/mesh.conf" >"$T/$n/helperd.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
	if kill -0 "$pid" 2>/dev/null; then kill "$pid"; wait "$pid"; rc=0; else wait "$pid"; rc=$?; fi
	check "data_dir $2 owner $3: helperd refuses to start (rc $rc)" [ "$rc" != 0 ]
	check "... and its log names the dir and says $4" \
	    grep -q "data_dir $T/$n/data: .*$4" "$T/$n/helperd.log"
	"$HELPERD" -check -c "$T/$n/mesh.conf" >"$T/$n/check.out" 2>&1; rc=$?
	check "... -check fails too (rc $rc): $(head -c 160 "$T/$n/check.out")" \
	    sh -c "[ $rc != 0 ] && grep -q 'data_dir $T/$n/data: .*$4' '$T/$n/check.out'"
	check "... and wrote nothing there" [ -z "$(ls -A "$T/$n/data")" ]
}

refused world 1777 root world-writable
refused group 0770 root group-writable
refused other 0700 nobody "owned by uid $(id -u nobody)"

# The same helperd on a private dir starts, and keeps its keys 0600.
write_conf good
check "-check on a directory that does not exist yet" "$HELPERD" -check -c "$T/good/mesh.conf"
start_helperd good || { fail "helperd starts on a private data_dir"; finish; exit 1; }
check "data_dir created 0700" [ "$(stat -c %a "$T/good/data")" = 700 ]
keys=$(find "$T/good/data" -name '*key*' -type f)
check "the CA wrote key files ($(echo $keys | wc -w))" [ -n "$keys" ]
for k in $keys; do
	check "key $(basename "$k") is 0600" [ "$(stat -c %a "$k")" = 600 ]
done
check "ports.json carries no pid" sh -c "! grep -q '\"pid\"' '$T/good/data/ports.json'"
check "-check on the running helperd's private dir" "$HELPERD" -check -c "$T/good/mesh.conf"
finish
