#!/bin/bash
# TLS 1.3 session resumption between helperd's two ends: later connections
# of a pair resume (same node: psk_ke), and a resumed session still carries the verified
# source identity (checked here under default deny + an explicit allow).
. "$(dirname "$0")/lib.sh"

ECHO=$(free_port); UP=$(free_port)
start_echo "$ECHO"
write_conf n1 'default_intention = "deny";'
sed "s/8181/$ECHO/" "$SRCDIR/examples/getting-started/socat.json" > "$T/n1/services.d/socat.json"
LOGLEVEL=debug start_helperd n1 || { fail "helperd starts"; finish; exit 1; }
"$MESHCTL" intention create -allow web socat >/dev/null
good=0
for i in 1 2 3 4 5 6; do
	[ "$(echo_through "$UP" web "socat:$UP")" = "hello-$UP" ] && good=$((good + 1))
done
check "6 sequential connections under default deny + allow web => socat" [ "$good" = 6 ]
kept=$(grep -c "TLS: session ticket kept for web > socat" "$T/n1/helperd.log")
check "the client keeps both tickets of every handshake ($kept of 6 connections, 12 expected)" [ "$kept" -ge 11 ]
n=$(grep -c "established (.*, resumed)" "$T/n1/helperd.log")
check "later connections resumed the TLS session ($n of 6)" [ "$n" -ge 4 ]
# Same node, both ends in helperd over a socketpair: resumed with psk_ke,
# no ECDHE group in GnuTLS's session description; a full handshake has one.
ecdhe=$(grep "established (.*, resumed)" "$T/n1/helperd.log" | grep -c "ECDHE")
check "same-node resumptions use psk_ke ($ecdhe of $n name an ECDHE group)" [ "$ecdhe" = 0 ]
full=$(grep "established (" "$T/n1/helperd.log" | grep -v ", resumed)" | head -1 | sed 's/.*established //')
check "a full handshake uses ECDHE $full" sh -c "printf '%s' \"\$1\" | grep -q 'ECDHE-'" _ "$full"
"$MESHCTL" intention create -allow web other >/dev/null
"$MESHCTL" intention delete web socat >/dev/null
out=$(echo_through "$UP" web "socat:$UP")
check "with the allow gone, default deny refuses again" [ -z "$out" ]
"$MESHCTL" intention create -allow api socat >/dev/null
out=$(echo_through "$UP" api "socat:$UP")
check "another source is allowed on its own (echo '$out')" [ "$out" = "hello-$UP" ]
# api's first connection made a full handshake: helperd's log names the
# connection (conn N api => socat relaying) and its handshake (conn N
# mTLS ... established (...)), which must not say "resumed".
id=$(sed -n 's/.*conn \([0-9]*\) api => socat relaying$/\1/p' "$T/n1/helperd.log" | head -1)
hs=$(grep "conn $id mTLS to .* established (" "$T/n1/helperd.log" | head -1 | sed 's/.*established //')
check_expr "another source resumes nothing of web's: conn ${id:-?} is a full handshake $hs" \
    '[ -n "$id" ] && [ -n "$hs" ] && ! grep -q ", resumed)" <<<"$hs"'
finish
