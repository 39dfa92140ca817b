# bash completion for meshctl(1): commands, subcommands, flags, and service
# names from the running helperd (meshctl catalog services).

_meshctl_services()
{
	local addr=()
	[ -n "${_meshctl_http_addr:-}" ] && addr=(-http-addr="$_meshctl_http_addr")
	meshctl "${addr[@]}" catalog services 2>/dev/null
}

# COMPREPLY from compgen's lines (no word splitting, no globbing of "*").
_meshctl_reply()
{
	mapfile -t COMPREPLY < <(compgen "$@")
}

_meshctl()
{
	# COMP_WORDS with "-flag", "=", "value" joined back into "-flag=value"
	# (no dependency on bash-completion's _init_completion).
	local -a words=()
	local cur cword=0 i w join=0
	for ((i = 0; i < ${#COMP_WORDS[@]}; i++)); do
		w=${COMP_WORDS[i]}
		if [[ $w == "=" && ${#words[@]} -gt 1 && ${words[-1]} == -* ]]; then
			words[-1]+="="
			join=1
		elif ((join)); then
			words[-1]+=$w
			join=0
		else
			words+=("$w")
		fi
		((i == COMP_CWORD)) && cword=$((${#words[@]} - 1))
	done
	cur=${words[cword]-}

	local i cmd="" sub="" _meshctl_http_addr=""
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		-http-addr=* | --http-addr=*) _meshctl_http_addr=${words[i]#*=} ;;
		-*) ;;
		*) if [ -z "$cmd" ]; then cmd=${words[i]}
		   elif [ -z "$sub" ]; then sub=${words[i]}; fi ;;
		esac
	done

	local http="-http-addr= -token= -token-file= -help"
	local flags="" subs="" names=0
	case $cmd in
	"") _meshctl_reply -W "acl ca catalog conn connect conns info intention
	        members monitor reload systemd top version -http-addr=
	        -version -help" -- "$cur"
	    [[ ${COMPREPLY-} == *= ]] && compopt -o nospace 2>/dev/null
	    return ;;
	acl) subs="token policy" ;;
	ca) subs="roots rotate"
	    case $sub in roots) flags="-pem $http" ;; rotate) flags="$http" ;; esac ;;
	catalog) subs="services nodes"
	    case $sub in services) flags="-tags $http" ;;
	    nodes) flags="-service= $http" ;; esac ;;
	connect) subs="proxy"
	    [ "$sub" = proxy ] && flags="-service= -upstream= -socket= -http-addr= -log-level= -help" ;;
	intention) subs="create delete get list check match"
	    case $sub in
	    create) flags="-allow -deny -replace -meta= -description= -file= $http"; names=1 ;;
	    delete | get | check) flags="$http"; names=1 ;;
	    list) flags="$http" ;;
	    match) flags="-source= -destination= $http"; names=1 ;;
	    esac ;;
	systemd) subs="enable disable"
	    case $sub in
	    enable) flags="-service= -socket= -shim= -unit-dir= -help" ;;
	    disable) flags="-unit-dir= -help" ;;
	    esac ;;
	conn) subs="kill"
	    [ "$sub" = kill ] && flags="$http" ;;
	conns) flags="-rate-interval= -json $http" ;;
	top) flags="-interval= -n= $http" ;;
	members | info) flags="$http" ;;
	monitor) flags="-log-level= $http" ;;
	reload) flags="$http" ;;
	version) return ;;
	esac

	# The value of a flag: -service=<TAB>, -destination=<TAB>, ...
	if [[ $cur == -*=* ]]; then
		local flag=${cur%%=*} val=${cur#*=}
		case ${flag#-} in
		-service | service | -source | source | -destination | destination | -upstream | upstream)
			_meshctl_reply -W "$(_meshctl_services)" -- "$val" ;;
		-log-level | log-level)
			_meshctl_reply -W "err warn info debug" -- "$val" ;;
		-socket | socket | -shim | shim | -file | file)
			_meshctl_reply -f -- "$val" ;;
		-unit-dir | unit-dir)
			_meshctl_reply -d -- "$val" ;;
		esac
		return
	fi
	if [ -n "$subs" ] && [ -z "$sub" ]; then
		_meshctl_reply -W "$subs -help" -- "$cur"
		return
	fi
	if [[ $cur == -* ]]; then
		_meshctl_reply -W "$flags" -- "$cur"
		[[ ${COMPREPLY-} == *= ]] && compopt -o nospace 2>/dev/null
		return
	fi
	if [ "$cmd" = systemd ]; then
		_meshctl_reply -W "$(systemctl list-unit-files --type=service \
		    --no-legend 2>/dev/null | awk '{print $1}')" -- "$cur"
	elif [ "$names" = 1 ]; then
		_meshctl_reply -W "$(_meshctl_services) '*'" -- "$cur"
	fi
} &&
	complete -F _meshctl meshctl
