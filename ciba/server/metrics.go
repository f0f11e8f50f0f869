package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/countersign/countersign/risk"
)

// Metrics are a node's Prometheus metrics, on a registry of their own.
type Metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	decisions *prometheus.CounterVec
	ruleHits  *prometheus.CounterVec
	rulesInfo *prometheus.GaugeVec
	evalTime  *prometheus.HistogramVec
	shadow    *prometheus.CounterVec
	authFails *prometheus.CounterVec
}

// NewMetrics registers the metrics.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "countersign_http_requests_total",
		Help: "HTTP requests by route, method and status."}, []string{"route", "method", "status"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "countersign_http_request_duration_seconds",
		Help: "HTTP request latency by route.", Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}},
		[]string{"route"})
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "countersign_decisions_total",
		Help: "Risk decisions by level and path."}, []string{"level", "path"})
	m.ruleHits = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "countersign_rule_hits_total",
		Help: "Matches per rule id."}, []string{"rule"})
	m.rulesInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "countersign_rules_active_info",
		Help: "1 for the ruleset version active on this node."}, []string{"version", "name"})
	m.evalTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "countersign_rules_evaluation_seconds",
		Help:    "Evaluation time of the active ruleset per request, by ruleset name.",
		Buckets: []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 1e-3}}, []string{"ruleset"})
	m.shadow = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "countersign_shadow_decisions_total",
		Help: "Decisions of the shadow ruleset next to the active one, by path move (from->to); same path counts as equal."},
		[]string{"move"})
	m.reg.MustRegister(m.requests, m.latency, m.decisions, m.ruleHits, m.rulesInfo, m.evalTime, m.shadow,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.registerAuthFailures()
	return m
}

// Registry returns the registry for more collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }

func (m *Metrics) observeHTTP(route, method string, status int, d time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}

// Decision counts a risk decision and its rule hits.
func (m *Metrics) Decision(d risk.Decision) {
	m.decisions.WithLabelValues(d.Level, d.Path).Inc()
	for _, r := range d.Rules {
		m.ruleHits.WithLabelValues(r.ID).Inc()
	}
	m.evalTime.WithLabelValues(d.RulesetName).Observe(d.Elapsed.Seconds())
	if d.Shadow != nil {
		move := "equal"
		if d.Shadow.Path != d.Path {
			move = d.Path + "->" + d.Shadow.Path
		}
		m.shadow.WithLabelValues(move).Inc()
	}
}

// ActiveRules marks the active ruleset version.
func (m *Metrics) ActiveRules(version, name string) {
	m.rulesInfo.Reset()
	m.rulesInfo.WithLabelValues(version, name).Set(1)
}
