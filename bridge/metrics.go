package bridge

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the bridge's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	Delivered   prometheus.Counter
	Lag         *prometheus.GaugeVec
	Tenants     prometheus.Gauge
	Errors      *prometheus.CounterVec
	Flush       *prometheus.HistogramVec
	Quarantined *prometheus.CounterVec
	Stuck       *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetsession_bridge_delivered_events_total",
			Help: "Events handed to the sink and accepted by it.",
		}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jetsession_bridge_lag_events",
			Help: "Events a tenant's stream holds that the sink was not handed yet, as of the last discovery.",
		}, []string{"tenant"}),
		Tenants: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetsession_bridge_tenants",
			Help: "Tenant streams followed.",
		}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetsession_bridge_errors_total",
			Help: "Errors by kind: discover, follow, quarantine (writing to it failed), sink_write.",
		}, []string{"kind"}),
		Flush: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "jetsession_bridge_sink_write_seconds",
			Help:    "Time the sink took to accept a batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"sink"}),
		Quarantined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetsession_bridge_quarantined_events_total",
			Help: "Stored messages not delivered as events (not valid events, or refused by the sink) and kept in the quarantine, by tenant.",
		}, []string{"tenant"}),
		Stuck: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jetsession_bridge_stuck_tenant",
			Help: "1 while the sink refuses a tenant's rows: that tenant waits and is retried, the others flow.",
		}, []string{"tenant"}),
	}
	reg.MustRegister(m.Delivered, m.Lag, m.Tenants, m.Errors, m.Flush, m.Quarantined, m.Stuck)
	return m
}

func (m *Metrics) error(kind string) {
	if m != nil {
		m.Errors.WithLabelValues(kind).Inc()
	}
}

func (m *Metrics) delivered(n int) {
	if m != nil {
		m.Delivered.Add(float64(n))
	}
}

func (m *Metrics) quarantined(tenant string) {
	if m != nil {
		m.Quarantined.WithLabelValues(tenant).Inc()
	}
}

func (m *Metrics) stuck(tenant string, on bool) {
	if m == nil {
		return
	}
	if on {
		m.Stuck.WithLabelValues(tenant).Set(1)
	} else {
		m.Stuck.DeleteLabelValues(tenant)
	}
}

func (m *Metrics) observeWrite(sink string, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.Flush.WithLabelValues(sink).Observe(d.Seconds())
	if err != nil {
		m.Errors.WithLabelValues("sink_write").Inc()
	}
}

func (m *Metrics) observeLag(lag map[string]uint64) {
	if m == nil {
		return
	}
	m.Tenants.Set(float64(len(lag)))
	for t, n := range lag {
		m.Lag.WithLabelValues(t).Set(float64(n))
	}
}
