package bot

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

func TestLogRequests(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(LogRequests(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})))
	ctx := WithRequestID(context.Background(), "ar_1")
	tests := []struct {
		name string
		log  func()
		want string
	}{
		{"named by the context", func() { log.InfoContext(ctx, "posted", "channel", "C1") },
			"level=INFO msg=posted request_id=ar_1 channel=C1"},
		{"no request", func() { log.InfoContext(context.Background(), "started") },
			"level=INFO msg=started"},
		{"line names its own", func() { log.InfoContext(ctx, "attached", "request_id", "ar_2") },
			"level=INFO msg=attached request_id=ar_2"},
		{"logger names its own", func() { log.With("request_id", "ar_3").InfoContext(ctx, "held") },
			"level=INFO msg=held request_id=ar_3"},
		{"through With", func() { log.With("platform", "chat").WarnContext(ctx, "post failed") },
			"level=WARN msg=\"post failed\" platform=chat request_id=ar_1"},
		{"wrapped twice", func() { slog.New(LogRequests(log.Handler())).InfoContext(ctx, "once") },
			"level=INFO msg=once request_id=ar_1"},
	}
	for _, tt := range tests {
		buf.Reset()
		tt.log()
		if got := strings.TrimSpace(buf.String()); got != tt.want {
			t.Errorf("%s: logged %q, want %q", tt.name, got, tt.want)
		}
	}
}
