# Common tasks. Each is one go command; the Makefile only names them.

.PHONY: test bench bench-quick release

# The test suite, as the README runs it.
test:
	go test -race ./...

# Measure the real binary against a loopback fake of Slack and write
# BENCHMARKS.md (about 5 minutes on two cores; see the file for the machine).
bench:
	go run ./cmd/approvebench

# A smoke run with small numbers; prints the report, writes no file.
bench-quick:
	go run ./cmd/approvebench -quick -out ''

# Static release binaries for linux/amd64 and linux/arm64 and their
# checksums, in $(DIST) (see the README's Releasing section). Run it on the
# tagged commit of a clone, so the binaries record the tag and revision.
DIST ?= dist
release:
	rm -rf $(DIST) && mkdir -p $(DIST)
	for arch in amd64 arm64; do \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$arch go build -buildvcs=auto -trimpath -ldflags="-s -w" \
	    -o $(DIST)/approvebot-linux-$$arch ./cmd/approvebot || exit 1; \
	done
	cd $(DIST) && sha256sum approvebot-linux-* > SHA256SUMS
