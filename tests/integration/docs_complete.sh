#!/bin/bash
# The references are complete: every key of conf/keys.c's table is in
# examples/mesh.conf (commented, with its default) and in mesh.conf(5);
# every meshctl command and subcommand is in meshctl(1) and in the bash
# and zsh completion; helperd -h and meshctl -h point to the manuals.
. "$(dirname "$0")/lib.sh"

conf=$SRCDIR/conf/keys.c             # the key table
svcconf=$SRCDIR/conf/service_file.c  # the service file's keys
keys=$(sed -n 's/.*{ *\.name = "\([a-z_]*\)".*/\1/p' "$conf" | sort -u)
check "keys.c's key table read ($(echo "$keys" | wc -w) keys)" [ "$(echo "$keys" | wc -w)" -ge 25 ]
man5=$SRCDIR/docs/man/mesh.conf.5.scd
for k in $keys; do
	[ "$k" = services ] && continue
	check "mesh.conf key $k: commented in examples/mesh.conf" \
		grep -Eq "^#[[:space:]]*$k = " "$SRCDIR/examples/mesh.conf"
	check "mesh.conf key $k: in mesh.conf(5)" grep -q "\*$k\*" "$man5"
done
for k in $(sed -n '/^static const char \*const \(svc\|check\|up\)_keys/,/;/p' "$svcconf" |
    grep -o '"[a-z_]*"' | tr -d '"'); do
	check "service key $k: in mesh.conf(5)" grep -q "\*$k\*" "$man5"
done

man1=$SRCDIR/docs/man/meshctl.1.scd
cmds=$("$MESHCTL" -h | sed -n '/^Available commands/,/^$/p' | awk 'NF > 1 && !/^Available/ {print $1}')
check "meshctl -h lists commands" [ -n "$cmds" ]
for c in $cmds; do
	subs=$("$MESHCTL" "$c" -h 2>/dev/null | sed -n '/^Subcommands:/,/^$/p' | awk 'NF > 1 && !/^Subcommands/ {print $1}')
	check "meshctl $c: in the bash completion" grep -qw -- "$c" "$SRCDIR/completion/meshctl.bash"
	check "meshctl $c: in the zsh completion" grep -qw -- "$c" "$SRCDIR/completion/_meshctl"
	if [ -z "$subs" ]; then
		check "meshctl $c: in meshctl(1)" grep -q "^\*meshctl $c\*" "$man1"
	fi
	for s in $subs; do
		check "meshctl $c $s: in meshctl(1)" grep -q "^\*meshctl $c $s\*" "$man1"
		check "meshctl $c $s: in the bash completion" grep -qw -- "$s" "$SRCDIR/completion/meshctl.bash"
		check "meshctl $c $s: in the zsh completion" grep -qw -- "$s" "$SRCDIR/completion/_meshctl"
	done
done
check "helperd -h names its manuals" sh -c "'$HELPERD' -h | grep -q 'helperd(8), mesh.conf(5)'"
check "meshctl -h names its manual" sh -c "'$MESHCTL' -h | grep -q 'meshctl(1)'"
finish
