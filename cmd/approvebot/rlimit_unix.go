//go:build unix

package main

import (
	"log/slog"
	"syscall"

	"github.com/approvebot/approvebot/policy"
)

// warnDescriptors says so when the connection caps could exhaust the
// process's descriptors before they are reached: accept would then fail
// for everyone alike.
func warnDescriptors(sc policy.ServerConfig, log *slog.Logger) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	const reserve = 64 // the store, the signing key, connections to the platforms
	if need := uint64(sc.MaxConnections+sc.MaxHeld) + reserve; need > lim.Cur {
		log.Warn("server.max_connections plus server.max_held exceed the open-file limit: lower them or raise the limit (ulimit -n, LimitNOFILE=)",
			"max_connections", sc.MaxConnections, "max_held", sc.MaxHeld, "open_file_limit", lim.Cur)
	}
}
