#!/bin/bash
# Temp files: an unprivileged user who can create entries in data_dir (it
# became world-writable after start: helperd only checks at start) plants
# symlinks under the temp names helperd used to use (<file>.tmp.<pid>, the
# pid was in ports.json) pointing at a root-owned file, then root changes an
# intention. helperd must create its temp file with O_EXCL | O_NOFOLLOW
# under a name nobody can guess: the root-owned file stays as it was.
# Against the old util_write_atomic the victim file is overwritten (and
# chmod'ed 0600): this test fails there.
. "$(dirname "$0")/sock_lib.sh"

write_conf n1 'default_intention = "allow";'
start_helperd n1 || { fail "helperd starts"; finish; exit 1; }
D=$T/n1/data
printf 'precious\n' > "$T/victim"; chmod 0644 "$T/victim"
chmod 0777 "$D"         # the operator's mistake, after start
chmod 0711 "$T/n1"

# The attacker: every name helperd could pick for its next temp files,
# the old scheme's (pid) and a few guesses around it.
cat > "$PUB/plant.sh" <<'SH'
d=$1 victim=$2 pid=$3
for f in intentions.json ports.json; do
	for p in $(seq $((pid - 5)) $((pid + 5))); do
		ln -s "$victim" "$d/$f.tmp.$p" 2>/dev/null
	done
done
ls "$d" | grep -c '\.tmp\.'
SH
n=$(as_nobody sh "$PUB/plant.sh" "$D" "$T/victim" "$HELPERD_PID")
check "nobody planted $n symlinks in data_dir" [ "${n:-0}" -ge 11 ]

out=$("$MESHCTL" intention create -deny web db 2>&1)
check "root creates an intention: $out" [ "$out" = "Created: web => db (deny)" ]
check "the root-owned file was not written through a symlink" \
    [ "$(cat "$T/victim")" = precious ]
check "... nor chmod'ed ($(stat -c %a "$T/victim"))" [ "$(stat -c %a "$T/victim")" = 644 ]
check "intentions.json is a regular file with the new intention" \
    sh -c "[ -f '$D/intentions.json' ] && [ ! -L '$D/intentions.json' ] && grep -q '\"db\"' '$D/intentions.json'"
check "intentions.json stays 0600" [ "$(stat -c %a "$D/intentions.json")" = 600 ]
left=$(find "$D" -maxdepth 1 -name '*.tmp.*' -type f | wc -l)
check "no temp file left behind ($left)" [ "$left" = 0 ]
finish
