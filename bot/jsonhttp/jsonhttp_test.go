package jsonhttp

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWrite(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		v          any
		wantStatus int
		wantType   string
		wantBody   string
	}{
		{"object", http.StatusCreated, map[string]any{"ok": true, "n": 2}, http.StatusCreated, "application/json", `{"n":2,"ok":true}` + "\n"},
		{"html stays escaped", http.StatusOK, map[string]string{"t": "<b>&"}, http.StatusOK, "application/json", `{"t":"\u003cb\u003e\u0026"}` + "\n"},
		{"unencodable", http.StatusOK, map[string]any{"f": func() {}}, http.StatusInternalServerError, "text/plain; charset=utf-8", "internal error\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			rec.Header().Set("Cache-Control", "no-store")
			Write(rec, tt.status, tt.v)
			if rec.Code != tt.wantStatus || rec.Header().Get("Content-Type") != tt.wantType || rec.Body.String() != tt.wantBody {
				t.Errorf("got %d %q %q, want %d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String(),
					tt.wantStatus, tt.wantType, tt.wantBody)
			}
			if rec.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("a header set before Write was lost")
			}
		})
	}
}

func TestWriteEncodedSendsWhatWriteSends(t *testing.T) {
	v := map[string]any{"ok": true, "ts": "1.000001"}
	want := httptest.NewRecorder()
	Write(want, http.StatusOK, v)
	got := httptest.NewRecorder()
	WriteEncoded(got, http.StatusOK, []byte(`{"ok":true,"ts":"1.000001"}`))
	if got.Code != want.Code || got.Header().Get("Content-Type") != want.Header().Get("Content-Type") || got.Body.String() != want.Body.String() {
		t.Errorf("WriteEncoded sent %d %q %q, Write %d %q %q", got.Code, got.Header().Get("Content-Type"), got.Body.String(),
			want.Code, want.Header().Get("Content-Type"), want.Body.String())
	}
}
