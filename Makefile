# Common tasks. Each is one go command; the Makefile only names them.

.PHONY: test bench bench-quick

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
