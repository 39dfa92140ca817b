# Thin wrapper over meson. `make` builds, `make test` runs every test (with
# AddressSanitizer + UBSan), `make demo` runs the getting-started
# walkthrough, `make install` honours PREFIX and DESTDIR (binaries, the
# shim, units, mesh.conf, man pages, completion, docs), `make deb` builds
# the Debian package in $(DEBOUT) and runs lintian on it. `make arch-report`
# prints file and function sizes and helperd's call graph (docs/ARCHITECTURE.md).
PREFIX   ?= /usr/local
DESTDIR  ?=
BUILD    ?= build
TBUILD   ?= build-test
SANITIZE ?= address,undefined
MESON_OPTS ?=
DEBOUT   ?= build-deb

.PHONY: all deps test unit integration demo demo-cluster install deb test-package bench bench-cluster arch-report clean

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(BUILD)/build.ninja:
	sh scripts/deps.sh build
	meson setup $(BUILD) --prefix=$(PREFIX) $(MESON_OPTS)

$(TBUILD)/build.ninja:
	sh scripts/deps.sh test etcd
	meson setup $(TBUILD) -Db_sanitize=$(SANITIZE) -Dunit_tests=enabled $(MESON_OPTS)

test: $(TBUILD)/build.ninja
	sh scripts/deps.sh test etcd
	ninja -C $(TBUILD)
	sh scripts/run-tests.sh $(TBUILD)

unit: $(TBUILD)/build.ninja
	ninja -C $(TBUILD)
	meson test -C $(TBUILD) --suite unit -v

integration: $(TBUILD)/build.ninja
	ninja -C $(TBUILD)
	meson test -C $(TBUILD) --suite integration -v

demo: $(BUILD)/build.ninja
	sh scripts/deps.sh demo
	ninja -C $(BUILD)
	bash examples/getting-started/run.sh $(BUILD)

# The walkthrough across three hosts (network namespaces, etcd); root.
demo-cluster: $(BUILD)/build.ninja
	sh scripts/deps.sh demo etcd
	ninja -C $(BUILD)
	bash examples/cluster/run.sh $(BUILD)

install: $(BUILD)/build.ninja
	meson configure $(BUILD) -Dprefix=$(PREFIX)
	ninja -C $(BUILD)
	DESTDIR=$(DESTDIR) meson install -C $(BUILD) --no-rebuild

# The Debian package, built from a copy of the tree (tracked and new files)
# so that dpkg-buildpackage's output stays in $(DEBOUT).
deb:
	sh scripts/deps.sh deb
	rm -rf $(DEBOUT) && mkdir -p $(DEBOUT)/meshshim
	git ls-files -co --exclude-standard -z | \
	    tar -c --null -T - | tar -x -C $(DEBOUT)/meshshim
	cd $(DEBOUT)/meshshim && dpkg-buildpackage -b -us -uc
	lintian --pedantic --display-info --fail-on error,warning \
	    $(DEBOUT)/meshshim_*.changes
	@ls -l $(DEBOUT)/*.deb

# Build the package, install it in a brand-new Debian root, run the
# getting-started walkthrough against the installed files, purge (root;
# several minutes: not part of `make test`).
test-package:
	bash tests/pkg/package.sh

# bench: same-node paths (bench/run.sh), the shim's cost, then the
# cross-node section (bench/crossnode.sh: two network namespaces over a
# veth pair; root). bench-cluster: 100 helperd nodes on a 3-member etcd
# (bench/cluster.sh; root, 15-20 minutes); NODES=30 for another count.
bench: $(BUILD)/build.ninja
	sh scripts/deps.sh bench etcd
	ninja -C $(BUILD)
	bash bench/run.sh $(BUILD)
	bash bench/shim_cost.sh $(BUILD) | tee bench/results/shim_cost.md
	bash bench/crossnode.sh $(BUILD)

bench-cluster: $(BUILD)/build.ninja
	sh scripts/deps.sh bench etcd
	ninja -C $(BUILD)
	bash bench/cluster.sh $(BUILD) $(NODES)

# Sizes, longest functions, helperd's include and call graphs, their cycles
# (scripts/arch_report.py; python3 only), then whether every name that
# docs/ARCHITECTURE.md puts in backticks still exists. A tool, not a test.
arch-report:
	python3 scripts/arch_report.py
	python3 scripts/arch_report.py --check-doc docs/ARCHITECTURE.md

clean:
	rm -rf $(BUILD) $(TBUILD) $(DEBOUT)
