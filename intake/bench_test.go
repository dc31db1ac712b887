package intake

import (
	"testing"
	"time"

	"github.com/approvebot/approvebot/intake/intaketest"
)

// benchAt fixes the bodies' times so every run reads the same bytes.
var benchAt = time.Date(2026, 6, 11, 12, 0, 0, 123456000, time.UTC)

func benchLegacyBody() []byte {
	body, _ := intaketest.LegacyBody(intaketest.Legacy{RequestedAt: benchAt, Context: intaketest.Object{
		{Key: "amount", Value: 5000},
		{Key: "currency", Value: "EUR"},
		{Key: "destination", Value: intaketest.Object{{Key: "iban", Value: "DE89370400440532013000"}, {Key: "name", Value: "Acme GmbH"}}},
		{Key: "reason", Value: "quarterly supplier payment, invoice 2026-0412"},
		{Key: "tags", Value: []any{"finance", "q2"}},
	}})
	return body
}

func benchV1Body() []byte {
	body, _ := intaketest.V1Body(intaketest.V1{
		ApprovalRequestID: "ar_4f1c2b9d8e7a6b5c4d3e2f1a0b9c8d7e", PolicyDecisionID: "pd_0a1b2c3d4e5f60718293a4b5c6d7e8f9",
		SubjectID: intaketest.Str("user-42"), ExpiresAt: benchAt, IncludeBinding: true,
		Context: intaketest.Object{{Key: "reason", Value: "quarterly supplier payment"}},
	})
	return body
}

func benchParse(b *testing.B, body []byte) {
	if _, err := Parse(body); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseLegacy(b *testing.B) { benchParse(b, benchLegacyBody()) }
func BenchmarkParseV1(b *testing.B)     { benchParse(b, benchV1Body()) }

func benchDecode(b *testing.B, body []byte) {
	if _, err := decodeObject(body, ""); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeObject(body, ""); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeObjectLegacy(b *testing.B) { benchDecode(b, benchLegacyBody()) }
func BenchmarkDecodeObjectV1(b *testing.B)     { benchDecode(b, benchV1Body()) }
