package main

import (
	"context"

	"github.com/approvebot/approvebot/bot"
)

// The engine's clock comes from the context run is given: the binary never
// sets one (the engine then uses the wall clock), tests set their own to move
// time (retention days, request deadlines) without sleeping.

type clockKey struct{}

func withClock(ctx context.Context, c bot.Clock) context.Context {
	return context.WithValue(ctx, clockKey{}, c)
}

// clockFrom is the context's clock, or the wall clock.
func clockFrom(ctx context.Context) bot.Clock {
	if c, ok := ctx.Value(clockKey{}).(bot.Clock); ok {
		return c
	}
	return bot.SystemClock{}
}
