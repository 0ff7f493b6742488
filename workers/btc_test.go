package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"payflow/chain/btc"
	"payflow/chain/btc/btctest"
	"payflow/config"
)

// TestAwaitBTC: a node serving another network than the configured one
// refuses the chain (config.ErrInvalid, naming the field); one that does
// not answer keeps its chain waiting, logged, until the worker stops, and
// never returns an error that would refuse it.
func TestAwaitBTC(t *testing.T) {
	node := btctest.Start(t) // simnet
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	b := config.BTCChain{RPCURL: node.Config.URL, Network: "simnet"}
	if err := awaitBTC(ctx, "BTC", b, node.Client, log); err != nil {
		t.Fatalf("the node serves simnet: %v", err)
	}
	wrong := node.Config
	wrong.Network = "regtest"
	c, err := btc.Dial(wrong)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b.Network = "regtest"
	err = awaitBTC(ctx, "BTC", b, c, log)
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "btc_chains.BTC.network is regtest") {
		t.Fatalf("a node of another network: %v", err)
	}

	// Nobody listens on a port just closed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	down, err := btc.Dial(btc.ClientConfig{URL: "http://127.0.0.1:" + strconv.Itoa(port), User: "u", Password: "p", Network: "simnet"})
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
	defer wcancel()
	if err := awaitBTC(wctx, "BTC", config.BTCChain{RPCURL: "http://127.0.0.1:" + strconv.Itoa(port), Network: "simnet"}, down, log); err != nil {
		t.Fatalf("a node that is down refuses its chain: %v", err)
	}
	if !strings.Contains(logs.String(), "this chain waits, the others go on") {
		t.Errorf("the wait is not logged: %s", logs.String())
	}
}

// TestSeenDeposits: the scanner's seen events become deposits at their
// output index, in satoshis, with no sender; its confirmed and reorged
// events are the tracker's business.
func TestSeenDeposits(t *testing.T) {
	d := btc.Deposit{TxID: "ab", Vout: 3, Address: "sb1qx", Sats: 1_234_567, Height: 500, BlockHash: "cd"}
	got := seenDeposits([]btc.Event{{Kind: btc.DepositSeen, Deposit: d}, {Kind: btc.DepositConfirmed, Deposit: d},
		{Kind: btc.DepositReorged, Deposit: d}})
	if len(got) != 1 {
		t.Fatalf("%d deposits", len(got))
	}
	s := got[0]
	if s.TxHash != "ab" || s.Position != 3 || s.To != "sb1qx" || s.From != "" || s.Token != "" ||
		s.Units.Cmp(big.NewInt(1_234_567)) != 0 || s.BlockNumber != 500 || s.BlockHash != "cd" {
		t.Errorf("%+v", s)
	}
}
