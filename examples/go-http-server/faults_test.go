package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestFaultsOffByDefault(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	wrapped := faults{}.wrap(next, func() float64 { t.Fatal("sampled while off"); return 0 },
		func(time.Duration) { t.Fatal("slept while off") })
	rec := httptest.NewRecorder()
	wrapped.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusTeapot {
		t.Fatalf("code %d, want the wrapped handler's 418", rec.Code)
	}
}

func TestFaultsErrorRateAndLatency(t *testing.T) {
	served := 0
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { served++ })
	var slept []time.Duration
	f := faults{errorRate: 0.5, latency: 20 * time.Millisecond}
	wrapped := f.wrap(next, sequence(0.1, 0.7, 0.49, 0.5), func(d time.Duration) { slept = append(slept, d) })
	var codes []int
	for range 4 {
		rec := httptest.NewRecorder()
		wrapped.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		codes = append(codes, rec.Code)
		if rec.Code == http.StatusInternalServerError && rec.Header().Get("X-Fault-Injected") != "error" {
			t.Error("an injected error is not marked")
		}
	}
	want := []int{500, 200, 500, 200}
	for i := range want {
		if codes[i] != want[i] {
			t.Fatalf("codes %v, want %v", codes, want)
		}
	}
	if served != 2 || len(slept) != 4 || slept[0] != 20*time.Millisecond {
		t.Fatalf("served %d, slept %v", served, slept)
	}
}

func TestRandomIsInUnitInterval(t *testing.T) {
	random := newRandom(42)
	below := 0
	for range 10000 {
		v := random()
		if v < 0 || v >= 1 {
			t.Fatalf("random() = %v", v)
		}
		if v < 0.5 {
			below++
		}
	}
	if below < 4700 || below > 5300 {
		t.Fatalf("%d of 10000 below 0.5: not uniform", below)
	}
}
