# make deb:   dist/knockd_VERSION_ARCH.deb for amd64 and arm64 (dpkg-deb)
# make image: the container image knockd:VERSION, FROM scratch (podman)
# make bins:  dist/build/ARCH/knockd and knock for each of ARCHES
# Static (CGO_ENABLED=0), -trimpath, and reproducible: every time stamp is
# the last commit's, so two builds of one commit give the same bytes.

VERSION    := $(shell packaging/version)
DEBVERSION := $(shell packaging/version --deb)
COMMIT     := $(shell git rev-parse HEAD)
export SOURCE_DATE_EPOCH := $(shell git log -1 --format=%ct)

ARCHES      ?= amd64 arm64
IMAGE_ARCH  ?= amd64
MAINTAINER  ?= knock-go <knock-go@users.noreply.github.com>
PODMAN      ?= podman
# An image tag may not hold "+".
IMAGE       ?= localhost/knockd:$(subst +,_,$(VERSION))

GO      ?= go
LDFLAGS := -s -w -buildid= \
	-X github.com/knock-go/knock/internal/cmdline.Version=$(VERSION) \
	-X github.com/knock-go/knock/internal/cmdline.Commit=$(COMMIT)

.PHONY: all bins deb image clean FORCE
all: deb

bins: $(foreach a,$(ARCHES),dist/build/$(a)/knockd)

# One go build writes both binaries; go's cache makes a rebuild cheap.
dist/build/%/knockd: FORCE
	CGO_ENABLED=0 GOOS=linux GOARCH=$* $(GO) build -trimpath -buildvcs=false \
		-ldflags '$(LDFLAGS)' -o dist/build/$*/ ./cmd/knockd ./cmd/knock

deb: $(foreach a,$(ARCHES),dist/knockd_$(DEBVERSION)_$(a).deb)

dist/knockd_$(DEBVERSION)_%.deb: dist/build/%/knockd
	VERSION='$(DEBVERSION)' COMMIT='$(COMMIT)' MAINTAINER='$(MAINTAINER)' \
		packaging/mkdeb $* dist/build/$* $@

image: dist/build/$(IMAGE_ARCH)/knockd
	$(PODMAN) build --quiet --platform linux/$(IMAGE_ARCH) --timestamp $(SOURCE_DATE_EPOCH) \
		-f packaging/Containerfile -t $(IMAGE) dist/build/$(IMAGE_ARCH)
	@echo $(IMAGE)

clean:
	rm -rf dist
