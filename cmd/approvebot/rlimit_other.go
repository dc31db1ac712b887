//go:build !unix

package main

import (
	"log/slog"

	"github.com/approvebot/approvebot/policy"
)

func warnDescriptors(policy.ServerConfig, *slog.Logger) {}
