package main

import (
	"log/slog"
	"reflect"
	"testing"

	"payflow/config"
	"payflow/internal/metrics"
)

// Every configured chain's counters exist at zero from the start, for each
// of its tokens and its native coin, so a rate() over a chain that has not
// moved yet is 0, not absent.
func TestNewMetricsInitsEveryChain(t *testing.T) {
	cfg := config.Config{Chains: map[string]config.ChainConfig{
		"ETH": {Native: config.NativeCoin{Symbol: "ETH"}, Tokens: map[string]config.Token{"USDT": {}, "USDC": {}}},
		"BSC": {Native: config.NativeCoin{Symbol: "BNB"}, Tokens: map[string]config.Token{"USDT": {}}},
	}}
	m, _, err := newMetrics(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[[2]string]bool{}
	payments := map[string]bool{}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range mt.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			switch f.GetName() {
			case "payflow_deposits_total":
				got[[2]string{l["chain"], l["symbol"]}] = true
			case "payflow_payments_total":
				payments[l["chain"]] = true
			}
		}
	}
	want := [][2]string{{"ETH", "ETH"}, {"ETH", "USDT"}, {"ETH", "USDC"}, {"BSC", "BNB"}, {"BSC", "USDT"}}
	for _, w := range want {
		if !got[w] {
			t.Errorf("payflow_deposits_total{chain=%q,symbol=%q} not created; have %v", w[0], w[1], got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("deposit series %v, want only %v", got, want)
	}
	if !payments["ETH"] || !payments["BSC"] {
		t.Errorf("payflow_payments_total chains %v, want ETH and BSC", payments)
	}
}

// samplerReadings wires every reading the Sampler takes from another
// package (a func or an interface): one left nil would leave its gauges
// stale or unsampled.
func TestSamplerReadingsAreAllWired(t *testing.T) {
	var sc metrics.SamplerConfig
	samplerReadings(&sc, nil, config.Config{})
	v := reflect.ValueOf(sc)
	funcs := 0
	for i := range v.NumField() {
		if k := v.Field(i).Kind(); k != reflect.Func && k != reflect.Interface {
			continue
		}
		funcs++
		if v.Field(i).IsNil() {
			t.Errorf("samplerReadings leaves SamplerConfig.%s nil", v.Type().Field(i).Name)
		}
	}
	if funcs == 0 {
		t.Fatal("SamplerConfig takes no readings: is this test still needed?")
	}
}
