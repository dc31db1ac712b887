package bot

import (
	"context"
	"log/slog"
)

// logKeyRequestID is the key operators grep for a request's lines.
const logKeyRequestID = "request_id"

type requestIDKey struct{}

// WithRequestID returns ctx naming the request id: every line logged with
// it through a logger LogRequests wrapped (the engine's, and in the service
// the adapters') names the request as request_id, however far down the call
// goes.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID is the request id ctx names, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// LogRequests wraps h so that a line logged with a context from
// WithRequestID names its request, first, unless the line or the logger
// already names one. Wrapping twice adds nothing.
func LogRequests(h slog.Handler) slog.Handler {
	if _, ok := h.(*requestHandler); ok {
		return h
	}
	return &requestHandler{h: h}
}

type requestHandler struct {
	h     slog.Handler
	named bool // the logger's own attributes name a request
}

func (rh *requestHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return rh.h.Enabled(ctx, l)
}

func (rh *requestHandler) Handle(ctx context.Context, rec slog.Record) error {
	id := RequestID(ctx)
	if id == "" || rh.named {
		return rh.h.Handle(ctx, rec)
	}
	named := false
	rec.Attrs(func(a slog.Attr) bool {
		named = a.Key == logKeyRequestID
		return !named
	})
	if named {
		return rh.h.Handle(ctx, rec)
	}
	out := slog.NewRecord(rec.Time, rec.Level, rec.Message, rec.PC)
	out.AddAttrs(slog.String(logKeyRequestID, id))
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(a)
		return true
	})
	return rh.h.Handle(ctx, out)
}

func (rh *requestHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	named := rh.named
	for _, a := range attrs {
		named = named || a.Key == logKeyRequestID
	}
	return &requestHandler{h: rh.h.WithAttrs(attrs), named: named}
}

func (rh *requestHandler) WithGroup(name string) slog.Handler {
	return &requestHandler{h: rh.h.WithGroup(name), named: rh.named}
}
