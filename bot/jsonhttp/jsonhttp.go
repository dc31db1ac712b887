// Package jsonhttp owns how approvebot, and the loopback fakes its tests
// run against, answer an HTTP request with JSON: one media type, one
// encoding, and a bare 500 when a value cannot be encoded, so no caller is
// ever sent half a body under a success status.
package jsonhttp

import (
	"encoding/json"
	"net/http"
)

// Write answers with status and v as JSON followed by a newline, as
// json.Encoder writes it. Headers the caller set before stay.
func Write(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	WriteEncoded(w, status, data)
}

// WriteEncoded answers with status and data, one JSON value the caller has
// encoded as encoding/json would, followed by a newline: the bytes Write
// sends for the value data stands for, without encoding it again.
func WriteEncoded(w http.ResponseWriter, status int, data []byte) {
	// RFC 8259 defines no charset parameter: JSON is UTF-8.
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}
