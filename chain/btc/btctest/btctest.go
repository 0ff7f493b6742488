// Package btctest runs a private btcd node for tests: a fresh simnet chain
// in a temporary directory, on a free loopback port, mining to a faucet
// whose key the test holds. Tests get a real node, as the dev stack's, but
// one of their own, so they may mine, fork and reorganise it at will.
package btctest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/rpcclient"
	"github.com/btcsuite/btcd/wire"

	"payflow/chain/btc"
)

// StartHeight is the height a new node is mined to: segwit is active on
// simnet from block 300 (BIP9, windows of 100 blocks) and coinbases are
// spendable 100 blocks deep, so the faucet can pay from its first
// coinbases at once.
const StartHeight = 432

// Node is a running private btcd.
type Node struct {
	// Client is payflow's client of the node.
	Client *btc.Client
	// Config is how to reach it (simnet).
	Config btc.ClientConfig
	// Faucet pays from the coinbases the node mines; FaucetWIF is its key.
	Faucet    *btc.Faucet
	FaucetWIF string
	rpc       *rpcclient.Client
}

// BinDir is where btcd is found: $PAYFLOW_BIN_DIR, else the bin directory
// at the repository's root (make up builds btcd there).
func BinDir() (string, error) {
	if d := os.Getenv("PAYFLOW_BIN_DIR"); d != "" {
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "bin"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Start starts a node, mines it to StartHeight and stops it when the test
// ends. A missing btcd fails the test, naming `make up`, which builds it.
func Start(t testing.TB) *Node {
	t.Helper()
	bin, err := BinDir()
	if err != nil {
		t.Fatal(err)
	}
	btcd := filepath.Join(bin, "btcd")
	if _, err := os.Stat(btcd); err != nil {
		t.Fatalf("btcd is not built (%v): `make up` or `scripts/stack.sh start-btcd` builds it into ./bin", err)
	}
	params, _ := btc.Params("simnet")
	wif, err := btc.NewWIF(params)
	if err != nil {
		t.Fatal(err)
	}
	faucet, err := btc.WIFAddress(wif, params)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port := freePort(t)
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	cfg := btc.ClientConfig{URL: "http://127.0.0.1:" + strconv.Itoa(port), User: "test", Password: hex.EncodeToString(secret),
		Network: "simnet"}
	conf := fmt.Sprintf("[Application Options]\nsimnet=1\ndatadir=%s\nlogdir=%s\ntxindex=1\naddrindex=1\nnolisten=1\n"+
		"rpclisten=127.0.0.1:%d\nnotls=1\nrpcuser=%s\nrpcpass=%s\nminingaddr=%s\n",
		filepath.Join(dir, "data"), filepath.Join(dir, "logs"), port, cfg.User, cfg.Password, faucet)
	if err := os.WriteFile(filepath.Join(dir, "btcd.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(btcd, "--configfile="+filepath.Join(dir, "btcd.conf"))
	out, err := os.Create(filepath.Join(dir, "btcd.out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		out.Close()
	})
	client, err := btc.Dial(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	rc, err := rpcclient.New(&rpcclient.ConnConfig{Host: "127.0.0.1:" + strconv.Itoa(port), User: cfg.User, Pass: cfg.Password,
		HTTPPostMode: true, DisableTLS: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Shutdown)
	n := &Node{Client: client, Config: cfg, rpc: rc, FaucetWIF: wif}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		err := client.CheckNetwork(cctx)
		ccancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			b, _ := os.ReadFile(filepath.Join(dir, "btcd.out"))
			t.Fatalf("btcd did not answer in 60s: %v\n%s", err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.Mine(t, StartHeight)
	if n.Faucet, err = btc.NewFaucet(client, wif); err != nil {
		t.Fatal(err)
	}
	return n
}

// Mine mines k blocks to the faucet and returns their hashes.
func (n *Node) Mine(t testing.TB, k int) []chainhash.Hash {
	t.Helper()
	hs, err := n.rpc.Generate(uint32(k))
	if err != nil {
		t.Fatalf("mining %d blocks: %v", k, err)
	}
	out := make([]chainhash.Hash, len(hs))
	for i, h := range hs {
		out[i] = *h
	}
	return out
}

// MineEvery mines a block every interval, as the dev stack's miner does,
// until the returned stop is called (or the test ends).
func (n *Node) MineEvery(t testing.TB, interval time.Duration) (stop func()) {
	t.Helper()
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-time.After(interval):
				_, _ = n.rpc.Generate(1) // a failure is tried again at the next tick
			}
		}
	}()
	var once bool
	stop = func() {
		if !once {
			once = true
			close(quit)
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

// Invalidate has the node drop block h and every block after it from its
// best chain (their transactions go back to the pool): the first half of a
// reorganisation; mining then builds the other branch.
func (n *Node) Invalidate(t testing.TB, h chainhash.Hash) {
	t.Helper()
	if err := n.rpc.InvalidateBlock(&h); err != nil {
		t.Fatalf("invalidating %s: %v", h, err)
	}
}

// Reconsider undoes Invalidate: the node takes back the branch of h if it
// has more work than its best chain.
func (n *Node) Reconsider(t testing.TB, h chainhash.Hash) {
	t.Helper()
	if err := n.rpc.ReconsiderBlock(&h); err != nil {
		t.Fatalf("reconsidering %s: %v", h, err)
	}
}

// Head is the node's best height and hash.
func (n *Node) Head(t testing.TB) (int64, chainhash.Hash) {
	t.Helper()
	h, hash, err := n.Client.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h, hash
}

// Pay has the faucet pay sats to addr and returns the txid; the
// transaction is in the node's pool, not mined.
func (n *Node) Pay(t testing.TB, addr string, sats int64) chainhash.Hash {
	t.Helper()
	tx, err := n.Faucet.Pay(context.Background(), addr, sats)
	if err != nil {
		t.Fatalf("faucet paying %d to %s: %v", sats, addr, err)
	}
	return tx.TxHash()
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// KeySigner is a btc.PSBTSigner holding one wallet's key: it signs every
// input of a planned attempt, standing in for payflow-signer in package
// tests (the signer's own rules are proven by its tests).
type KeySigner struct {
	Key    *btcec.PrivateKey
	Params *chaincfg.Params
}

// SignPSBT signs and finalises req's packet.
func (k KeySigner) SignPSBT(_ context.Context, req btc.SignRequest) (*wire.MsgTx, error) {
	all := make([]int, len(req.Packet.Inputs))
	for i := range all {
		all[i] = i
	}
	if err := btc.SignPSBT(req.Packet, k.Key, all, k.Params); err != nil {
		return nil, err
	}
	return btc.Finalize(req.Packet)
}
