package config

import (
	"errors"
	"strings"
	"testing"
)

// TestHotTierBounds: hot_ceiling and hot_floor are optional per chain and
// asset, in the asset's units; an invalid one, a floor at or above its
// ceiling, or a ceiling on a chain without cold_address is refused at load,
// naming the chain and the asset.
func TestHotTierBounds(t *testing.T) {
	const cold = `"cold_address": "0x2222222222222222222222222222222222222222", `
	withCold := func() []string { return []string{`"collection_address"`, cold + `"collection_address"`} }
	for _, tc := range []struct {
		name  string
		base  string
		edits []string
		want  []string // none: accepted
	}{
		{name: "no bounds accepted", base: chainsShape},
		{name: "ceiling and floor with cold_address", base: chainsShape,
			edits: append(withCold(), `"approval_threshold": "40000", "sweep_threshold": "800"`,
				`"approval_threshold": "40000", "sweep_threshold": "800", "hot_ceiling": "250000", "hot_floor": "20000"`)},
		{name: "a floor alone needs no cold address", base: chainsShape,
			edits: []string{`"symbol": "BNB", "dust": "0.001",`, `"symbol": "BNB", "dust": "0.001", "hot_floor": "3",`}},
		{name: "ceiling without cold_address", base: chainsShape,
			edits: []string{`"symbol": "eth",`, `"symbol": "eth", "hot_ceiling": "200",`},
			want:  []string{"chains.ETH.cold_address is required: chains.ETH.native.hot_ceiling sweep"}},
		{name: "floor at its ceiling", base: chainsShape,
			edits: append(withCold(), `"approval_threshold": "50000", "sweep_threshold": "1000"`,
				`"approval_threshold": "50000", "sweep_threshold": "1000", "hot_ceiling": "5000", "hot_floor": "5000"`),
			want: []string{"chains.ETH.tokens.USDT.hot_floor 5000 of USDT on ETH must be below its hot_ceiling 5000"}},
		{name: "not positive decimals", base: chainsShape,
			edits: append(withCold(), `"approval_threshold": "40000", "sweep_threshold": "800"`,
				`"approval_threshold": "40000", "sweep_threshold": "800", "hot_ceiling": "lots", "hot_floor": "-1"`),
			want: []string{`chains.ETH.tokens.USDC.hot_ceiling "lots" of USDC on ETH must be a positive decimal`,
				`chains.ETH.tokens.USDC.hot_floor "-1" of USDC on ETH must be a positive decimal`}},
		{name: "cold address not an address", base: chainsShape,
			edits: []string{`"collection_address"`, `"cold_address": "cold", "collection_address"`},
			want:  []string{`chains.ETH.cold_address "cold" is not a 0x address`}},
		{name: "cold address is the collection wallet", base: chainsShape,
			edits: []string{`"collection_address"`, `"cold_address": "0x1111111111111111111111111111111111111111", "collection_address"`},
			want:  []string{"chains.ETH.cold_address is the chain's collection_address too"}},
		{name: "seed shape", base: seedShape,
			edits: []string{`"sweep_threshold": "1000"}}`, `"sweep_threshold": "1000", "hot_ceiling": "90000"}}`},
			want:  []string{"eth_config.cold_address is required: tokens.USDT.hot_ceiling"}},
		{name: "seed shape with its cold address", base: seedShape,
			edits: []string{`"sweep_threshold": "1000"}}`, `"sweep_threshold": "1000", "hot_ceiling": "90000"}}`,
				`"chainId": 1,`, `"chainId": 1, "cold_address": "0x2222222222222222222222222222222222222222",`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.base
			for i := 0; i < len(tc.edits); i += 2 {
				if !strings.Contains(body, tc.edits[i]) {
					t.Fatalf("edit %q does not apply", tc.edits[i])
				}
				body = strings.Replace(body, tc.edits[i], tc.edits[i+1], 1)
			}
			_, err := Load(write(t, body))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}

	cfg, err := Load(write(t, strings.NewReplacer(`"collection_address"`, cold+`"collection_address"`,
		`"approval_threshold": "40000", "sweep_threshold": "800"`,
		`"approval_threshold": "40000", "sweep_threshold": "800", "hot_ceiling": "250000.5", "hot_floor": "20000"`).Replace(chainsShape)))
	if err != nil {
		t.Fatal(err)
	}
	eth, _ := cfg.Chain("ETH")
	usdc, _ := eth.Asset("usdc")
	if c, ok := usdc.Ceiling(); !ok || c.String() != "250000.5" {
		t.Errorf("USDC ceiling = %s %v", c, ok)
	}
	if f, ok := usdc.Floor(); !ok || f.String() != "20000" {
		t.Errorf("USDC floor = %s %v", f, ok)
	}
	if usdt, _ := eth.Asset("USDT"); usdt.HotCeiling != "" {
		t.Errorf("USDT has USDC's ceiling: %+v", usdt)
	}
	if eth.ColdAddress != "0x2222222222222222222222222222222222222222" {
		t.Errorf("cold address = %q", eth.ColdAddress)
	}
}
