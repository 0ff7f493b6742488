package integration

import (
	"context"
	"fmt"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi/bind"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"

	"payflow/chain/evm"
	"payflow/chain/evm/watch"
	"payflow/internal/stacktest"
	"payflow/ledger"
)

type depositSet struct {
	mu  sync.Mutex
	got map[string]int
}

func (s *depositSet) HandleDeposits(_ context.Context, deps []watch.Deposit) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range deps {
		s.got[fmt.Sprintf("%s/%d", d.TxHash.Hex(), d.LogIndex)]++
	}
	return nil
}

func (s *depositSet) count(k string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[k]
}

// TestListenerSurvivesWebSocketCuts runs a listener against the dev chain
// through a proxy that cuts its WebSocket (and HTTP) connections again and
// again while deposits keep arriving; every deposit is delivered exactly once.
func TestListenerSurvivesWebSocketCuts(t *testing.T) {
	st := stacktest.Load(t)
	db := stacktest.TestDB(t, "wscut")
	if err := ledger.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	eth := st.Eth(t)
	usdt := st.USDT(t, eth)
	wsProxy := stacktest.NewCutProxy(t, "127.0.0.1:"+portOf(t, st.ETHWSURL))
	dial := func(ctx context.Context) (watch.HeadSubscriber, error) {
		return ethclient.DialContext(ctx, "ws://"+wsProxy.Addr())
	}
	key, _ := crypto.GenerateKey()
	watched := crypto.PubkeyToAddress(key.PublicKey)
	head, _ := eth.BlockNumber(context.Background())
	if _, err := evm.Watch(context.Background(), db, "ETH", "USDT", watched, head); err != nil {
		t.Fatal(err)
	}
	sink := &depositSet{got: map[string]int{}}
	l, err := watch.NewListener(watch.ListenerConfig{Chain: "ETH", Tokens: []common.Address{common.HexToAddress(st.Tokens["USDT"].Address)},
		PollInterval: time.Hour /* only WebSocket heads and reconnects drive it */}, db, eth, dial, nil, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { _ = l.Run(ctx); close(done) }()

	fk, _ := crypto.HexToECDSA(st.FaucetPrivateKey)
	opts, _ := bind.NewKeyedTransactorWithChainID(fk, big.NewInt(st.ChainID))
	var want []string
	var last *types.Transaction
	for i := 0; i < 12; i++ {
		tx, err := usdt.Transfer(opts, watched, big.NewInt(int64(1000+i)))
		if err != nil {
			t.Fatal(err)
		}
		last = tx
		want = append(want, tx.Hash().Hex()+"/0")
		if i%3 == 1 {
			wsProxy.Cut() // mid-stream: the subscription dies with deposits in flight
		}
		time.Sleep(700 * time.Millisecond)
	}
	if _, err := bind.WaitMined(context.Background(), eth, last); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		all := true
		for _, k := range want {
			if sink.count(k) == 0 {
				all = false
			}
		}
		if all {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	cancel()
	<-done
	if wsProxy.Cuts() < 4 {
		t.Fatalf("only %d cuts", wsProxy.Cuts())
	}
	for _, k := range want {
		if n := sink.count(k); n != 1 {
			t.Errorf("deposit %s delivered %d times, want exactly 1", k, n)
		}
	}
}

func portOf(t *testing.T, url string) string {
	_, port, err := net.SplitHostPort(url[len("ws://"):])
	if err != nil {
		t.Fatal(err)
	}
	return port
}
