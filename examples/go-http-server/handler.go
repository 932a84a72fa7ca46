package main

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// durationBuckets are client_golang's defaults plus the SLO thresholds of the committed stacks (0.3 s:
// the latency SLO's `le="0.3"` bucket must exist).
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.3, 0.5, 1, 2.5, 5, 10}

// metrics are the SLIs the stacks' SLO rules read: http_requests_total by code, and the request duration.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(registry prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests served, by status code, method and route.",
		}, []string{"code", "method", "handler"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "HTTP request duration in seconds, by route.",
			Buckets: durationBuckets,
		}, []string{"handler"}),
	}
	registry.MustRegister(m.requests, m.duration)
	return m
}

// instrument counts and times every request of one route. The series of every code the route answers
// with exist from the start at 0: a series born at its first increment loses that increment to rate(),
// which would skew the error ratio the SLO rules compute.
func (m *metrics) instrument(route string, next http.Handler, codes ...int) http.Handler {
	counter := m.requests.MustCurryWith(prometheus.Labels{"handler": route})
	for _, code := range codes {
		counter.WithLabelValues(strconv.Itoa(code), "get")
	}
	observer := m.duration.MustCurryWith(prometheus.Labels{"handler": route})
	return promhttp.InstrumentHandlerCounter(counter, promhttp.InstrumentHandlerDuration(observer, next))
}

// newHandler is the service's routes: the API (behind the fault injector) and the health and metrics
// endpoints, which faults never touch.
func newHandler(f faults, random func() float64) http.Handler {
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := newMetrics(registry)
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "go_http_server_build_info",
		Help:        "The running build: 1, labelled with its version and commit.",
		ConstLabels: prometheus.Labels{"version": version, "commit": commit},
	})
	buildInfo.Set(1)
	registry.MustRegister(buildInfo)

	mux := http.NewServeMux()
	api := f.wrap(http.HandlerFunc(hello), random, time.Sleep)
	mux.Handle("GET /healthz", m.instrument("/healthz", http.HandlerFunc(healthz), http.StatusOK))
	mux.Handle("GET /version", m.instrument("/version", http.HandlerFunc(versionInfo), http.StatusOK))
	mux.Handle("GET /api/hello", m.instrument("/api/hello", api, http.StatusOK, http.StatusBadRequest, http.StatusInternalServerError))
	mux.Handle("GET /metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{Registry: registry}))
	return mux
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

func versionInfo(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"version": version, "commit": commit})
}

func hello(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if name == "" {
		name = "world"
	}
	if len(name) > 64 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "name longer than 64 bytes"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "hello, " + name})
}

func writeJSON(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	content, _ := json.Marshal(body) // maps of strings always marshal
	w.Header().Set("Content-Length", strconv.Itoa(len(content)+1))
	w.WriteHeader(code)
	_, _ = w.Write(append(content, '\n'))
}
