package server

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/courier-im/courier/webhook"
)

// Metrics is the Prometheus instrumentation of a server and its hub: pass
// the same value as courier.Config.Metrics and server Config.Metrics.
type Metrics struct {
	reg           *prometheus.Registry
	conns         prometheus.Gauge
	connsOpened   prometheus.Counter
	framesIn      prometheus.Counter
	frameErrors   *prometheus.CounterVec
	messagesIn    *prometheus.CounterVec
	durableIn     prometheus.Counter // messagesIn's two series, looked up once: MessageIn runs per message
	volatileIn    prometheus.Counter
	messagesOut   prometheus.Counter
	commitSeconds prometheus.Histogram
	commitBatch   prometheus.Histogram
	commitErrors  prometheus.Counter
	slowConsumers prometheus.Counter
	rejected      prometheus.Counter
	brokerIn      prometheus.Counter
	brokerOut     prometheus.Counter
	unrouted      prometheus.Counter
}

// NewMetrics registers courier's metrics with reg; with a nil reg it makes a
// registry with the Go and process collectors.
func NewMetrics(reg *prometheus.Registry) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &Metrics{
		reg:         reg,
		conns:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "courier_connections", Help: "Live WebSocket connections."}),
		connsOpened: prometheus.NewCounter(prometheus.CounterOpts{Name: "courier_connections_opened_total", Help: "WebSocket connections accepted."}),
		framesIn:    prometheus.NewCounter(prometheus.CounterOpts{Name: "courier_frames_in_total", Help: "Frames received from clients."}),
		frameErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "courier_frame_errors_total", Help: "Error frames sent, by code."}, []string{"code"}),
		messagesIn:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "courier_messages_in_total", Help: "Messages accepted for delivery."}, []string{"kind"}),
		messagesOut: prometheus.NewCounter(prometheus.CounterOpts{Name: "courier_messages_out_total", Help: "Messages handed to connections."}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "courier_store_commit_seconds", Help: "Latency of store commits (one per batch).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		commitBatch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "courier_store_commit_batch_messages", Help: "Messages per store commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11)}),
		commitErrors:  prometheus.NewCounter(prometheus.CounterOpts{Name: "courier_store_commit_errors_total", Help: "Store commits that failed."}),
		slowConsumers: prometheus.NewCounter(prometheus.CounterOpts{Name: "courier_slow_consumers_total", Help: "Connections closed for falling behind."}),
		rejected:      prometheus.NewCounter(prometheus.CounterOpts{Name: "courier_connections_rejected_total", Help: "Upgrades refused at the connection limit."}),
	}
	m.brokerIn = prometheus.NewCounter(prometheus.CounterOpts{Name: "courier_broker_messages_received_total", Help: "Messages received from other nodes through the broker."})
	m.brokerOut = prometheus.NewCounter(prometheus.CounterOpts{Name: "courier_broker_deliveries_total", Help: "Connections that messages from other nodes were handed to."})
	m.unrouted = prometheus.NewCounter(prometheus.CounterOpts{Name: "courier_broker_unrouted_total", Help: "Messages received from other nodes for which this node held no connection."})
	m.durableIn, m.volatileIn = m.messagesIn.WithLabelValues("durable"), m.messagesIn.WithLabelValues("volatile")
	f(m.brokerIn)
	f(m.brokerOut)
	f(m.unrouted)
	f(m.connsOpened)
	f(m.framesIn)
	f(m.frameErrors)
	f(m.messagesIn)
	f(m.messagesOut)
	f(m.commitSeconds)
	f(m.commitBatch)
	f(m.commitErrors)
	f(m.slowConsumers)
	f(m.rejected)
	f(m.conns)
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }

// ConnOpened implements courier.Metrics.
func (m *Metrics) ConnOpened() { m.connsOpened.Inc(); m.conns.Inc() }

// ConnClosed implements courier.Metrics.
func (m *Metrics) ConnClosed() { m.conns.Dec() }

// MessagesOut implements courier.Metrics.
func (m *Metrics) MessagesOut(n int) { m.messagesOut.Add(float64(n)) }

// MessageIn implements courier.Metrics.
func (m *Metrics) MessageIn(durable bool) {
	if durable {
		m.durableIn.Inc()
	} else {
		m.volatileIn.Inc()
	}
}

// Committed implements courier.Metrics.
func (m *Metrics) Committed(batch int, took time.Duration, err error) {
	if err != nil {
		m.commitErrors.Inc()
		return
	}
	m.commitSeconds.Observe(took.Seconds())
	m.commitBatch.Observe(float64(batch))
}

// BrokerReceived implements courier.Metrics.
func (m *Metrics) BrokerReceived(n int) {
	m.brokerIn.Inc()
	m.brokerOut.Add(float64(n))
	if n == 0 {
		m.unrouted.Inc()
	}
}

// Webhook exports the offline webhook's counters, read from stats.
func (m *Metrics) Webhook(stats func() webhook.Stats) {
	counter := func(name, help string, v func(webhook.Stats) uint64) {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v(stats())) }))
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "courier_webhook_pending", Help: "Webhook notifications waiting, in flight or waiting for a retry."},
		func() float64 { return float64(stats().Pending) }))
	counter("courier_webhook_delivered_total", "Webhook notifications the endpoint accepted.", func(s webhook.Stats) uint64 { return s.Delivered })
	counter("courier_webhook_retries_total", "Webhook attempts that were retries.", func(s webhook.Stats) uint64 { return s.Retries })
	counter("courier_webhook_failed_total", "Webhook notifications that ran out of attempts.", func(s webhook.Stats) uint64 { return s.Failed })
	counter("courier_webhook_rejected_total", "Webhook notifications the endpoint refused for good (4xx).", func(s webhook.Stats) uint64 { return s.Rejected })
	counter("courier_webhook_dropped_total", "Webhook notifications dropped because the queue was full.", func(s webhook.Stats) uint64 { return s.Dropped })
}
