package slackfake

import "net/http"

// Handler is the fake's HTTP handler, so a benchmark can time the fake's own
// work without a network round trip.
func Handler(f *Fake) http.Handler { return http.HandlerFunc(f.serve) }
