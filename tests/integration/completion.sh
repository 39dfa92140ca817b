#!/bin/bash
# The bash completion of meshctl: commands, subcommands, flags, and service
# names asked from the running helperd. The zsh completion parses.
. "$(dirname "$0")/lib.sh"

write_conf n1 'services = ( { name = "socat"; port = 8181; connect = {}; },
	{ name = "web"; port = 8080; connect = {}; } );'
start_helperd n1 || exit 1
mkdir -p "$T/bin" && ln -s "$MESHCTL" "$T/bin/meshctl"

# comp "meshctl intention create -deny w": the completions, one a line.
comp() {
	PATH="$T/bin:$PATH" bash -c '
		. "$1"; shift
		line=$1
		read -ra COMP_WORDS <<<"$line"
		[[ $line == *" " ]] && COMP_WORDS+=("")
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		COMP_LINE=$line COMP_POINT=${#line}
		_meshctl
		printf "%s\n" "${COMPREPLY[@]}"' sh "$SRCDIR/completion/meshctl.bash" "$1" | sort
}
check "commands" [ "$(comp 'meshctl ' | tr '\n' ' ')" = "-help -http-addr= -version acl ca catalog conn connect conns info intention members monitor reload systemd top version " ]
check "acl subcommands" [ "$(comp 'meshctl acl ' | tr '\n' ' ')" = "-help policy token " ]
check "subcommands of intention" [ "$(comp 'meshctl intention c' | tr '\n' ' ')" = "check create " ]
check "flags of intention create" sh -c "[ \"\$(printf '%s\n' '$(comp 'meshctl intention create -d')' | tr '\n' ' ')\" = '-deny -description= ' ]"
check "services from helperd for intention create" [ "$(comp 'meshctl intention create -deny ' | tr '\n' ' ')" = "* socat web " ]
check "services after a prefix" [ "$(comp 'meshctl intention check web s')" = "socat" ]
# bash splits "-destination=so" at '='
check "services as a flag value (-destination = so)" [ "$(comp 'meshctl intention match -destination = so')" = "socat" ]
check "log levels for connect proxy -log-level" [ "$(comp 'meshctl connect proxy -log-level = d')" = "debug" ]
check "systemd subcommands" [ "$(comp 'meshctl systemd ' | tr '\n' ' ')" = "-help disable enable " ]
kill "$HELPERD_PID"; wait "$HELPERD_PID" 2>/dev/null
check "no helperd: no service names, no error" [ -z "$(comp 'meshctl intention check web s' 2>&1)" ]
if command -v zsh >/dev/null; then
	check "the zsh completion parses (zsh -n)" zsh -n "$SRCDIR/completion/_meshctl"
else
	skip "the zsh completion parses" "zsh not installed"
fi
finish
