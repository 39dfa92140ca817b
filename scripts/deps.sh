#!/bin/sh
# Install the Debian packages meshshim needs for the given purposes, or,
# when not root, print the exact apt-get line and fail.
#   scripts/deps.sh build|test|demo|bench|etcd|deb|all ...
set -eu

# libsystemd-dev: sd_notify (optional in meson); scdoc: the man pages.
build="gcc make meson ninja-build pkg-config libgnutls28-dev libconfig-dev \
libcurl4-openssl-dev libmicrohttpd-dev libjansson-dev libldns-dev libsystemd-dev \
scdoc"
# test: Criterion (unit suite), the programs the integration tests run, and
# clang with libclang-rt-dev (libFuzzer + ASan runtimes, only Recommended by
# clang; without them no fuzz target links); prometheus for promtool (the
# metrics test checks the exposition format with it); chromium,
# chromium-driver and python3-selenium for the web UI test (a real
# headless browser); man-db: systemd-analyze verify runs `man` for the
# units' Documentation= (install_units); etcd-server: the cluster unit
# test starts a real etcd.
test="$build libcriterion-dev socat netcat-openbsd curl python3 openssl \
gnutls-bin tcpdump strace iproute2 procps psmisc nginx-light wrk iperf3 systemd clang \
libclang-rt-dev dnsutils golang-go busybox-static util-linux zsh prometheus \
chromium chromium-driver python3-selenium man-db etcd-server"
demo="$build socat netcat-openbsd curl"
bench="$test stunnel4 haproxy iperf3 sockperf wrk gnuplot-nox linux-perf \
valgrind"
etcd="$test etcd-server etcd-client"
# make deb: debian/control's Build-Depends, dpkg-buildpackage, lintian.
deb="$build build-essential git debhelper dpkg-dev lintian"

want=""
[ $# -gt 0 ] || set -- build
for p in "$@"; do
	case "$p" in
	build) want="$want $build" ;;
	test) want="$want $test" ;;
	demo) want="$want $demo" ;;
	bench) want="$want $bench" ;;
	etcd) want="$want $etcd" ;;
	deb) want="$want $deb" ;;
	all) want="$want $test $etcd" ;;
	*) echo "deps.sh: unknown purpose $p (build|test|demo|bench|etcd|deb|all)" >&2
	   exit 2 ;;
	esac
done

missing=""
for pkg in $(printf '%s\n' $want | sort -u); do
	if ! dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null |
	    grep -q '^install ok installed'; then
		missing="$missing $pkg"
	fi
done
[ -n "$missing" ] || exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "meshshim needs these Debian packages:$missing" >&2
	echo "Install them with:" >&2
	echo "  sudo apt-get install -y$missing" >&2
	exit 1
fi
echo "Installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
