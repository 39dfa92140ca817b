# Thin wrapper over meson. `make` builds, `make test` runs every test (with
# AddressSanitizer + UBSan), `make demo` runs the getting-started
# walkthrough, `make install` honours PREFIX and DESTDIR.
PREFIX   ?= /usr/local
DESTDIR  ?=
BUILD    ?= build
TBUILD   ?= build-test
SANITIZE ?= address,undefined
MESON_OPTS ?=

.PHONY: all deps test unit integration demo demo-cluster install bench clean

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(BUILD)/build.ninja:
	sh scripts/deps.sh build
	meson setup $(BUILD) --prefix=$(PREFIX) $(MESON_OPTS)

$(TBUILD)/build.ninja:
	sh scripts/deps.sh test etcd
	meson setup $(TBUILD) -Db_sanitize=$(SANITIZE) $(MESON_OPTS)

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

bench: $(BUILD)/build.ninja
	sh scripts/deps.sh bench
	ninja -C $(BUILD)
	bash bench/run.sh $(BUILD)
	bash bench/shim_cost.sh $(BUILD) | tee bench/results/shim_cost.md

clean:
	rm -rf $(BUILD) $(TBUILD)
