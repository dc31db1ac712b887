package bot

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the engine's Prometheus series, on a registry of their own (no
// package-level state). Labels carry statuses and platforms only: never ids,
// people or channels, so cardinality stays small and nothing personal leaks.
type metrics struct {
	registry  *prometheus.Registry
	requests  *prometheus.CounterVec // opened, by schema
	resolved  *prometheus.CounterVec // by final status
	clicks    *prometheus.CounterVec // by platform and result
	delivery  *prometheus.CounterVec // chat calls by platform, kind and result
	decision  prometheus.Histogram   // seconds from opening to resolution
	pending   prometheus.GaugeFunc   // requests with a running deadline
	outbox    prometheus.GaugeFunc   // chat jobs owed
	heldConns prometheus.Gauge       // agents holding a connection

	checkpoints  *prometheus.CounterVec // audit checkpoints, by sink and result
	checkpointAt *prometheus.GaugeVec   // last checkpoint written, by sink
	behind       prometheus.Gauge       // 1: at start the store did not hold the file's last checkpoint

	limited *prometheus.CounterVec // submissions refused with 429, by limit
	refused *prometheus.CounterVec // requests refused (4xx), by endpoint and reason

	retentionPasses  *prometheus.CounterVec // retention passes, by result
	retentionRemoved *prometheus.CounterVec // what retention removed, by kind
}

func newMetrics(e *Engine) *metrics {
	m := &metrics{registry: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "approvebot_requests_total", Help: "Approval requests opened, by schema.",
	}, []string{"schema"})
	m.resolved = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "approvebot_resolutions_total", Help: "Approval requests resolved, by final status.",
	}, []string{"status"})
	m.clicks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "approvebot_clicks_total", Help: "Verified clicks, by platform and result (counted, refused).",
	}, []string{"platform", "result"})
	m.delivery = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "approvebot_chat_calls_total", Help: "Posts and updates sent to chat platforms, by result (ok, retry, failed).",
	}, []string{"platform", "kind", "result"})
	m.decision = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "approvebot_time_to_resolution_seconds",
		Help:    "Time from a request's opening to its resolution.",
		Buckets: []float64{1, 5, 15, 30, 60, 120, 290, 600, 1800, 3600, 86400},
	})
	m.pending = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "approvebot_pending_requests", Help: "Requests waiting for a decision.",
	}, func() float64 { return float64(e.pendingTimers()) })
	m.outbox = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "approvebot_outbox_jobs", Help: "Chat posts and updates owed (queued, running or waiting to retry).",
	}, func() float64 { return float64(e.outbox.size()) })
	m.heldConns = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "approvebot_held_connections", Help: "Agents holding a connection open for an answer.",
	})
	m.limited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "approvebot_limited_requests_total", Help: "Submissions refused (429) because their caller was over a limit, by limit (rate, max_pending).",
	}, []string{"limit"})
	m.checkpoints = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "approvebot_audit_checkpoints_total", Help: "Signed audit checkpoints, by sink (file, log) and result (written, failed).",
	}, []string{"sink", "result"})
	m.checkpointAt = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "approvebot_audit_checkpoint_last_written_timestamp_seconds", Help: "When the last audit checkpoint was written, by sink (Unix time).",
	}, []string{"sink"})
	m.behind = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "approvebot_audit_store_behind_checkpoint",
		Help: "1 when, at start, the store did not hold the last checkpoint of audit.checkpoints.file (cut, rolled back or rewritten).",
	})
	m.retentionPasses = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "approvebot_retention_passes_total", Help: "store.retention passes, by result (removed, nothing, failed).",
	}, []string{"result"})
	m.retentionRemoved = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "approvebot_retention_removed_total", Help: "What store.retention removed, by kind (requests, audit_records).",
	}, []string{"kind"})
	m.refused = newRefusedCounter()
	m.registry.MustRegister(m.requests, m.resolved, m.clicks, m.delivery, m.decision, m.pending, m.outbox, m.heldConns,
		m.checkpoints, m.checkpointAt, m.behind, m.limited, m.refused, m.retentionPasses, m.retentionRemoved,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// MetricsHandler serves the engine's metrics in the Prometheus text format.
func (e *Engine) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(e.metrics.registry, promhttp.HandlerOpts{})
}
