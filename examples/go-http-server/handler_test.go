package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, h http.Handler, target string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec
}

func TestHealthz(t *testing.T) {
	rec := get(t, newHandler(faults{}, nil), "/healthz")
	if rec.Code != http.StatusOK || rec.Body.String() != "ok\n" {
		t.Fatalf("GET /healthz = %d %q, want 200 \"ok\\n\"", rec.Code, rec.Body.String())
	}
}

func TestHello(t *testing.T) {
	h := newHandler(faults{}, nil)
	cases := []struct {
		target string
		code   int
		body   string
	}{
		{"/api/hello", http.StatusOK, `{"message":"hello, world"}`},
		{"/api/hello?name=gopher", http.StatusOK, `{"message":"hello, gopher"}`},
		{"/api/hello?name=" + strings.Repeat("x", 65), http.StatusBadRequest, `{"error":"name longer than 64 bytes"}`},
	}
	for _, c := range cases {
		rec := get(t, h, c.target)
		if rec.Code != c.code || strings.TrimSpace(rec.Body.String()) != c.body {
			t.Errorf("GET %s = %d %q, want %d %q", c.target, rec.Code, rec.Body.String(), c.code, c.body)
		}
		if got := rec.Header().Get("Content-Type"); got != "application/json" {
			t.Errorf("GET %s: Content-Type %q", c.target, got)
		}
	}
}

func TestVersion(t *testing.T) {
	version, commit = "1.4.2", "0123abc"
	defer func() { version, commit = "dev", "unknown" }()
	h := newHandler(faults{}, nil)
	rec := get(t, h, "/version")
	if want := `{"commit":"0123abc","version":"1.4.2"}`; strings.TrimSpace(rec.Body.String()) != want {
		t.Fatalf("GET /version = %q, want %q", rec.Body.String(), want)
	}
	metrics := get(t, h, "/metrics").Body.String()
	if !strings.Contains(metrics, `go_http_server_build_info{commit="0123abc",version="1.4.2"} 1`) {
		t.Fatalf("build info not exported:\n%s", metrics)
	}
}

func TestUnknownRouteAndMethod(t *testing.T) {
	h := newHandler(faults{}, nil)
	if rec := get(t, h, "/nope"); rec.Code != http.StatusNotFound {
		t.Errorf("GET /nope = %d, want 404", rec.Code)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/healthz", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz = %d, want 405", rec.Code)
	}
}

// The SLO rules read these exact series: http_requests_total{code} and the duration histogram with a
// bucket at each SLO threshold, `le` as the Go client writes it.
func TestMetricsAsTheSloRulesReadThem(t *testing.T) {
	h := newHandler(faults{errorRate: 0.5}, sequence(0.9, 0.1))
	get(t, h, "/api/hello")
	get(t, h, "/api/hello")
	get(t, h, "/healthz")
	body := get(t, h, "/metrics").Body.String()
	for _, want := range []string{
		`http_requests_total{code="200",handler="/api/hello",method="get"} 1`,
		`http_requests_total{code="500",handler="/api/hello",method="get"} 1`,
		`http_requests_total{code="200",handler="/healthz",method="get"} 1`,
		`http_request_duration_seconds_bucket{handler="/api/hello",le="0.3"} 2`,
		`http_request_duration_seconds_bucket{handler="/api/hello",le="+Inf"} 2`,
		`http_request_duration_seconds_count{handler="/api/hello"} 2`,
		`go_goroutines `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// Before any traffic, every code a route answers with is a series at 0, so rate() counts the first error.
func TestMetricsSeriesExistBeforeTraffic(t *testing.T) {
	body := get(t, newHandler(faults{}, nil), "/metrics").Body.String()
	for _, want := range []string{
		`http_requests_total{code="200",handler="/api/hello",method="get"} 0`,
		`http_requests_total{code="400",handler="/api/hello",method="get"} 0`,
		`http_requests_total{code="500",handler="/api/hello",method="get"} 0`,
		`http_requests_total{code="200",handler="/healthz",method="get"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestMetricsLatencyBuckets(t *testing.T) {
	h := newHandler(faults{latency: 350 * time.Millisecond}, nil)
	get(t, h, "/api/hello")
	body := get(t, h, "/metrics").Body.String()
	for _, want := range []string{
		`http_request_duration_seconds_bucket{handler="/api/hello",le="0.3"} 0`,
		`http_request_duration_seconds_bucket{handler="/api/hello",le="0.5"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// sequence returns the given values in turn, then repeats the last.
func sequence(values ...float64) func() float64 {
	i := 0
	return func() float64 {
		v := values[min(i, len(values)-1)]
		i++
		return v
	}
}

func TestMetricsEndpointServesTextFormat(t *testing.T) {
	h := newHandler(faults{}, nil)
	get(t, h, "/healthz")
	rec := get(t, h, "/metrics")
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics = %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if !strings.Contains(string(body), "# TYPE http_request_duration_seconds histogram") {
		t.Fatal("no duration histogram")
	}
}
