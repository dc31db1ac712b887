package logwriter

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkJSONLines logs the service's kind of line (slog's JSON handler)
// into a file, straight or through a Writer, from one goroutine and from
// eight; ns/op and allocs/op are per line.
func BenchmarkJSONLines(b *testing.B) {
	for _, through := range []bool{false, true} {
		for _, goroutines := range []int{1, 8} {
			name := fmt.Sprintf("direct/goroutines=%d", goroutines)
			if through {
				name = fmt.Sprintf("writer/goroutines=%d", goroutines)
			}
			b.Run(name, func(b *testing.B) {
				f, err := os.CreateTemp(b.TempDir(), "log")
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				dst := &countingWriter{w: f}
				var out io.Writer = dst
				var w *Writer
				if through {
					w = New(dst, 0)
					out = w
				}
				log := slog.New(slog.NewJSONHandler(out, nil))
				b.ReportAllocs()
				b.ResetTimer()
				var wg sync.WaitGroup
				for g := range goroutines {
					n := b.N / goroutines
					if g < b.N%goroutines {
						n++
					}
					wg.Go(func() {
						for range n {
							log.Info("posted", "request_id", "ar_0123456789abcdef", "platform", "slack", "channel", "C0TREASURY")
						}
					})
				}
				wg.Wait()
				if w != nil {
					w.Close() // every line written counts
				}
				b.ReportMetric(float64(dst.calls.Load())/float64(b.N), "writes/line")
			})
		}
	}
}

// countingWriter counts the write calls that reach the file.
type countingWriter struct {
	w     io.Writer
	calls atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.calls.Add(1)
	return c.w.Write(p)
}
