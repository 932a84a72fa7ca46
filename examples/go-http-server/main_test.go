package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

func env(values map[string]string) func(string) string {
	return func(key string) string { return values[key] }
}

func TestParseConfig(t *testing.T) {
	cfg, err := parseConfig(nil, env(nil))
	if err != nil || cfg.addr != "127.0.0.1:8080" || cfg.faults.enabled() {
		t.Fatalf("defaults: %+v %v", cfg, err)
	}
	cfg, err = parseConfig(nil, env(map[string]string{"FAULT_ERROR_RATE": "0.5", "FAULT_LATENCY": "250ms"}))
	if err != nil || cfg.faults.errorRate != 0.5 || cfg.faults.latency != 250*time.Millisecond {
		t.Fatalf("from the environment: %+v %v", cfg, err)
	}
	cfg, err = parseConfig([]string{"-fault-error-rate=0.1", "-fault-latency=1s", "-addr=:0"},
		env(map[string]string{"FAULT_ERROR_RATE": "0.5", "FAULT_LATENCY": "250ms"}))
	if err != nil || cfg.faults.errorRate != 0.1 || cfg.faults.latency != time.Second || cfg.addr != ":0" {
		t.Fatalf("flags win over the environment: %+v %v", cfg, err)
	}
}

func TestParseConfigRefusesBadValues(t *testing.T) {
	cases := map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"rate above 1":     {[]string{"-fault-error-rate=1.5"}, nil, "not between 0 and 1"},
		"negative latency": {[]string{"-fault-latency=-1s"}, nil, "is negative"},
		"env rate":         {nil, map[string]string{"FAULT_ERROR_RATE": "half"}, "FAULT_ERROR_RATE"},
		"env latency":      {nil, map[string]string{"FAULT_LATENCY": "soon"}, "FAULT_LATENCY"},
		"unknown flag":     {[]string{"-nope"}, nil, "not defined"},
	}
	for name, c := range cases {
		if _, err := parseConfig(c.args, env(c.env)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, c.want)
		}
	}
}

func TestRunServesAndShutsDown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() { done <- run(ctx, []string{"-addr=127.0.0.1:0"}, env(nil), logger, ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not listening after 10s")
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz = %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no shutdown after 15s")
	}
}

func TestRunFailsOnBadConfigOrAddress(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := run(context.Background(), []string{"-fault-error-rate=2"}, env(nil), logger, nil); err == nil {
		t.Error("a bad rate did not fail")
	}
	if err := run(context.Background(), []string{"-addr=127.0.0.1:-1"}, env(nil), logger, nil); err == nil {
		t.Error("a bad address did not fail")
	}
}
