package main

import (
	"testing"

	"payflow/internal/stackfile"
	"payflow/internal/stacktest"
)

func TestRequestSlotOneChainIsUnchanged(t *testing.T) {
	for i := 0; i < 40; i++ {
		c, s := requestSlot(i, 1, 4)
		if c != 0 || s != i%4 {
			t.Fatalf("request %d: chain %d sender %d, want 0 and %d", i, c, s, i%4)
		}
	}
}

// On two chains each chain gets half the requests, half of them pays, from
// every sender.
func TestRequestSlotTwoChainsSpreadsKindsAndSenders(t *testing.T) {
	perChain := map[int]int{}
	pays := map[int]int{}
	senders := map[[2]int]bool{}
	for i := 0; i < 80; i++ {
		c, s := requestSlot(i, 2, 4)
		perChain[c]++
		if i%2 == 1 {
			pays[c]++
		}
		senders[[2]int{c, s}] = true
	}
	if perChain[0] != 40 || perChain[1] != 40 || pays[0] != 20 || pays[1] != 20 || len(senders) != 8 {
		t.Fatalf("per chain %v, pays %v, chain×sender pairs %d", perChain, pays, len(senders))
	}
	if c0, _ := requestSlot(0, 2, 4); c0 != 0 {
		t.Fatal("the first pair must go to the first chain")
	}
	if c2, _ := requestSlot(2, 2, 4); c2 != 1 {
		t.Fatal("the second pair must go to the second chain")
	}
}

func TestPayChains(t *testing.T) {
	eth := stackfile.ChainFields{ETHRPCURL: "http://eth", ETHWSURL: "ws://eth"}
	st := &stacktest.Stack{Stack: stackfile.Stack{ChainFields: eth, Chains: map[string]stacktest.Chain{
		"ETH": {ChainFields: eth},
		"BSC": {ChainFields: stackfile.ChainFields{ETHRPCURL: "http://bsc", ETHWSURL: "ws://bsc"}},
	}}}
	one, ok := payChains(st, false)
	if !ok || len(one) != 1 || one[0].name != "ETH" || one[0].wsURL != "ws://eth" {
		t.Fatalf("one chain: %+v %v", one, ok)
	}
	two, ok := payChains(st, true)
	if !ok || len(two) != 2 || two[0].name != "ETH" || two[1].name != "BSC" || two[1].rpcURL != "http://bsc" || two[1].wsURL != "ws://bsc" {
		t.Fatalf("two chains: %+v %v", two, ok)
	}
	if _, ok := payChains(&stacktest.Stack{Stack: stackfile.Stack{ChainFields: stackfile.ChainFields{ETHRPCURL: "http://eth"}}}, true); ok {
		t.Fatal("a one-chain stack has no two-chain run")
	}
}
