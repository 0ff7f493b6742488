package evm_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi/bind"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient/simulated"

	"payflow/chain"
	"payflow/chain/evm"
	"payflow/chain/token"
)

// Fixed test keys: the deployer owns the token; the sender is the hot wallet
// under test; the broke wallet holds tokens but no ether.
const (
	deployerKeyHex = "6f18fa8eb4ce0e480fded9ea37e346c9b1aac2c94b2d1824e68c0762b562937e"
	senderKeyHex   = "cfc49903bcb76c2963076277f710fca59125c5df5394c235173464ec876c5614"
	brokeKeyHex    = "d46f8652aacab8a06c48629f6bb4d16ff90e8a050d78240aff2d1e53a74ce219"

	chainName = "ETH"
	// simChainID is the simulated backend's fixed chain id.
	simChainID = 1337
)

var (
	// recipient holds nothing and is never a sender.
	recipient = common.HexToAddress("0x00000000000000000000000000000000000fee01")
	// senderTokens is what the sender and the broke wallet are minted: 1,000,000 USDT.
	senderTokens = big.NewInt(1_000_000_000_000)
	maxFeeWei    = big.NewInt(100_000_000_000) // 100 gwei
)

func mustKey(t testing.TB, hexKey string) *ecdsa.PrivateKey {
	t.Helper()
	k, err := crypto.HexToECDSA(hexKey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fakeKeys is a KeySource over fixed keys. It hands out a fresh copy per call
// (the broadcaster zeroes what it gets) and keeps the copies so a test can
// check they were zeroed.
type fakeKeys struct {
	keys  map[string]*ecdsa.PrivateKey // lowercase address → key
	calls atomic.Int64
	mu    sync.Mutex
	given []*ecdsa.PrivateKey
}

func newFakeKeys(keys ...*ecdsa.PrivateKey) *fakeKeys {
	f := &fakeKeys{keys: map[string]*ecdsa.PrivateKey{}}
	for _, k := range keys {
		f.keys[evm.Lower(crypto.PubkeyToAddress(k.PublicKey))] = k
	}
	return f
}

func (f *fakeKeys) Key(_ context.Context, chainName, address string) (*ecdsa.PrivateKey, error) {
	f.calls.Add(1)
	k, ok := f.keys[address]
	if !ok || chainName != "ETH" {
		return nil, fmt.Errorf("no key for %s/%s", chainName, address)
	}
	c, err := crypto.ToECDSA(crypto.FromECDSA(k))
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.given = append(f.given, c)
	f.mu.Unlock()
	return c, nil
}

// chainFixture is a simulated chain with TestUSDT deployed and minted to the
// sender and the broke wallet, a fresh database, and a broadcaster.
type chainFixture struct {
	t      testing.TB
	ctx    context.Context
	sim    *simulated.Backend
	client simulated.Client
	db     *sql.DB
	keys   *fakeKeys
	bc     *evm.Broadcaster
	usdt   *token.TestUSDT
	token  common.Address
	sender common.Address
	broke  common.Address
}

func newChainFixture(t testing.TB) *chainFixture {
	t.Helper()
	ctx := context.Background()
	deployerKey, senderKey, brokeKey := mustKey(t, deployerKeyHex), mustKey(t, senderKeyHex), mustKey(t, brokeKeyHex)
	deployer := crypto.PubkeyToAddress(deployerKey.PublicKey)
	f := &chainFixture{t: t, ctx: ctx,
		sender: crypto.PubkeyToAddress(senderKey.PublicKey),
		broke:  crypto.PubkeyToAddress(brokeKey.PublicKey),
	}
	ether := new(big.Int).Exp(big.NewInt(10), big.NewInt(21), nil) // 1000 ETH
	f.sim = simulated.NewBackend(types.GenesisAlloc{
		deployer:   {Balance: ether},
		f.sender:   {Balance: ether},
		falseToken: {Code: falseTokenCode},
		feeToken:   {Code: feeTokenCode},
	})
	t.Cleanup(func() { f.sim.Close() })
	f.client = f.sim.Client()

	auth, err := bind.NewKeyedTransactorWithChainID(deployerKey, big.NewInt(simChainID))
	if err != nil {
		t.Fatal(err)
	}
	var tx *types.Transaction
	f.token, tx, f.usdt, err = token.DeployTestUSDT(auth, f.client)
	if err != nil {
		t.Fatalf("deploying TestUSDT: %v", err)
	}
	f.sim.Commit()
	f.requireSuccess(tx.Hash())
	for _, to := range []common.Address{f.sender, f.broke} {
		tx, err := f.usdt.Mint(auth, to, senderTokens)
		if err != nil {
			t.Fatalf("minting: %v", err)
		}
		f.sim.Commit()
		f.requireSuccess(tx.Hash())
	}

	f.db = testDB(t)
	f.keys = newFakeKeys(senderKey, brokeKey)
	f.bc = f.newBroadcaster(maxFeeWei)
	return f
}

func (f *chainFixture) newBroadcaster(maxFee *big.Int) *evm.Broadcaster {
	f.t.Helper()
	bc, err := evm.NewBroadcaster(evm.BroadcasterConfig{Chain: chainName, ChainID: big.NewInt(simChainID),
		MaxFeeWei: maxFee}, f.db, f.client, f.keys, discardLog())
	if err != nil {
		f.t.Fatal(err)
	}
	return bc
}

func (f *chainFixture) requireSuccess(hash common.Hash) *types.Receipt {
	f.t.Helper()
	r, err := f.client.TransactionReceipt(f.ctx, hash)
	if err != nil {
		f.t.Fatalf("receipt of %s: %v", hash.Hex(), err)
	}
	if r.Status != types.ReceiptStatusSuccessful {
		f.t.Fatalf("%s reverted in block %d", hash.Hex(), r.BlockNumber)
	}
	return r
}

func (f *chainFixture) tokenBalance(owner common.Address) *big.Int {
	f.t.Helper()
	b, err := f.usdt.BalanceOf(&bind.CallOpts{Context: f.ctx}, owner)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func (f *chainFixture) request(workflowID string, units int64) evm.TransferRequest {
	return evm.TransferRequest{WorkflowID: workflowID, Step: "transfer", From: f.sender, To: recipient,
		Token: f.token, Units: big.NewInt(units)}
}

func (f *chainFixture) count(query string, args ...any) int {
	f.t.Helper()
	var n int
	if err := f.db.QueryRowContext(f.ctx, query, args...).Scan(&n); err != nil {
		f.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// nextNonce returns the stored nonce lane of addr, or -1 when it has none.
func (f *chainFixture) nextNonce(addr common.Address) int64 {
	f.t.Helper()
	var n int64
	err := f.db.QueryRowContext(f.ctx, "SELECT next_nonce FROM nonces WHERE chain=? AND address=?",
		chainName, evm.Lower(addr)).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return -1
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

func (f *chainFixture) signAndSend(req evm.TransferRequest) evm.SignedTx {
	f.t.Helper()
	stx, err := f.bc.Signer.SignTransfer(f.ctx, req)
	if err != nil {
		f.t.Fatalf("signing %s/%s: %v", req.WorkflowID, req.Step, err)
	}
	if _, err := f.bc.Sender.Send(f.ctx, req.WorkflowID, req.Step); err != nil {
		f.t.Fatalf("sending %s/%s: %v", req.WorkflowID, req.Step, err)
	}
	return stx
}

func TestSignTransferThenSendMovesTokens(t *testing.T) {
	f := newChainFixture(t)
	const units = 12_345_678

	stx, err := f.bc.Signer.SignTransfer(f.ctx, f.request("wf-1", units))
	if err != nil {
		t.Fatal(err)
	}
	if stx.Replayed || stx.Nonce != 0 || stx.From != f.sender {
		t.Fatalf("first signature: replayed=%v nonce=%d from=%s", stx.Replayed, stx.Nonce, stx.From.Hex())
	}
	var decoded types.Transaction
	if err := decoded.UnmarshalBinary(stx.Raw); err != nil {
		t.Fatal(err)
	}
	if decoded.Hash() != stx.Hash || *decoded.To() != f.token || decoded.ChainId().Int64() != simChainID {
		t.Fatalf("stored bytes decode to %s to %s chain %s", decoded.Hash().Hex(), decoded.To().Hex(), decoded.ChainId())
	}
	if from, err := types.Sender(types.LatestSignerForChainID(big.NewInt(simChainID)), &decoded); err != nil || from != f.sender {
		t.Fatalf("signed by %s (%v), want %s", from.Hex(), err, f.sender.Hex())
	}
	if n := f.count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id='wf-1' AND state='signed'"); n != 1 {
		t.Fatalf("%d signed rows before send", n)
	}
	// Signing alone must not touch the chain.
	if _, err := f.client.TransactionReceipt(f.ctx, stx.Hash); err == nil {
		t.Fatal("transaction has a receipt before it was sent")
	}

	if _, err := f.bc.Sender.Send(f.ctx, "wf-1", "transfer"); err != nil {
		t.Fatal(err)
	}
	if n := f.count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id='wf-1' AND state='sent'"); n != 1 {
		t.Fatalf("%d rows marked sent", n)
	}
	f.sim.Commit()

	r, err := f.bc.Sender.Receipt(f.ctx, stx.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != types.ReceiptStatusSuccessful {
		t.Fatalf("receipt status %d", r.Status)
	}
	if got := f.tokenBalance(recipient); got.Int64() != units {
		t.Fatalf("recipient holds %s, want %d", got, units)
	}
	if got, want := f.tokenBalance(f.sender), new(big.Int).Sub(senderTokens, big.NewInt(units)); got.Cmp(want) != 0 {
		t.Fatalf("sender holds %s, want %s", got, want)
	}
	f.keys.mu.Lock()
	defer f.keys.mu.Unlock()
	if len(f.keys.given) != 1 {
		t.Fatalf("key opened %d times, want 1", len(f.keys.given))
	}
	for _, k := range f.keys.given {
		if k.D.Sign() != 0 {
			t.Fatal("the broadcaster left a private key in memory")
		}
	}
}

func TestSignTransferReplayedStepSignsNothing(t *testing.T) {
	f := newChainFixture(t)
	req := f.request("wf-replay", 1_000_000)

	first, err := f.bc.Signer.SignTransfer(f.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	second, err := f.bc.Signer.SignTransfer(f.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.Replayed || !second.Replayed {
		t.Fatalf("replayed flags: first=%v second=%v", first.Replayed, second.Replayed)
	}
	if first.Hash != second.Hash || !bytes.Equal(first.Raw, second.Raw) || first.Nonce != second.Nonce {
		t.Fatalf("replay returned another transaction: %s/%d vs %s/%d", first.Hash.Hex(), first.Nonce,
			second.Hash.Hex(), second.Nonce)
	}
	if n := f.count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id=? AND step=?", req.WorkflowID, req.Step); n != 1 {
		t.Fatalf("%d signed_txs rows for one step", n)
	}
	if n := f.nextNonce(f.sender); n != 1 {
		t.Fatalf("nonce lane at %d after one signature, want 1", n)
	}
	if n := f.keys.calls.Load(); n != 1 {
		t.Fatalf("key opened %d times, want 1", n)
	}

	// Sending twice before mining: the node already has it.
	for i := 0; i < 2; i++ {
		if _, err := f.bc.Sender.Send(f.ctx, req.WorkflowID, req.Step); err != nil {
			t.Fatalf("send %d: %v", i+1, err)
		}
	}
	f.sim.Commit()
	f.requireSuccess(first.Hash)
	// Sending after it mined: the node says "nonce too low", the receipt says it is ours.
	if _, err := f.bc.Sender.Send(f.ctx, req.WorkflowID, req.Step); err != nil {
		t.Fatalf("send after mining: %v", err)
	}
	f.sim.Commit()

	if got := f.tokenBalance(recipient); got.Cmp(req.Units) != 0 {
		t.Fatalf("recipient holds %s after replays, want exactly %s", got, req.Units)
	}
	if n, err := f.client.NonceAt(f.ctx, f.sender, nil); err != nil || n != 1 {
		t.Fatalf("sender sent %d transactions on chain (%v), want 1", n, err)
	}
}

func TestSignTransferConcurrentSameStepStoresOne(t *testing.T) {
	f := newChainFixture(t)
	req := f.request("wf-race", 5)
	const n = 8
	results := make([]evm.SignedTx, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i], errs[i] = f.bc.Signer.SignTransfer(f.ctx, req) })
	}
	wg.Wait()
	fresh := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("attempt %d: %v", i, errs[i])
		}
		if results[i].Hash != results[0].Hash || !bytes.Equal(results[i].Raw, results[0].Raw) {
			t.Fatalf("attempt %d returned %s, attempt 0 %s", i, results[i].Hash.Hex(), results[0].Hash.Hex())
		}
		if !results[i].Replayed {
			fresh++
		}
	}
	if fresh != 1 {
		t.Fatalf("%d attempts claim to have signed, want 1", fresh)
	}
	if c := f.count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id=?", req.WorkflowID); c != 1 {
		t.Fatalf("%d signed_txs rows", c)
	}
	// Losers may have locked the lane and signed, but rolled back: no nonce is burnt.
	if next := f.nextNonce(f.sender); next != 1 {
		t.Fatalf("nonce lane at %d, want 1", next)
	}
}

// concurrentSigns is how many transfers one wallet signs at once. 500 (the
// issue's number) runs in well under a minute on two cores.
const concurrentSigns = 500

func TestSignTransferConcurrentNoncesHaveNoGaps(t *testing.T) {
	f := newChainFixture(t)
	const units = 7
	start := time.Now()

	results := make([]evm.SignedTx, concurrentSigns)
	errs := make([]error, concurrentSigns)
	var wg sync.WaitGroup
	for i := range concurrentSigns {
		wg.Go(func() {
			results[i], errs[i] = f.bc.Signer.SignTransfer(f.ctx, f.request(fmt.Sprintf("wf-many-%03d", i), units))
		})
	}
	wg.Wait()
	signedIn := time.Since(start)

	byNonce := make([]*evm.SignedTx, concurrentSigns)
	for i := range concurrentSigns {
		if errs[i] != nil {
			t.Fatalf("signing %d: %v", i, errs[i])
		}
		s := &results[i]
		if s.Replayed {
			t.Fatalf("signing %d claims a replay", i)
		}
		if s.Nonce >= concurrentSigns || byNonce[s.Nonce] != nil {
			t.Fatalf("nonce %d handed out twice or out of range", s.Nonce)
		}
		byNonce[s.Nonce] = s
	}

	rows, err := f.db.QueryContext(f.ctx, "SELECT nonce, tx_hash FROM signed_txs WHERE chain=? AND from_address=? ORDER BY nonce",
		chainName, evm.Lower(f.sender))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	want := uint64(0)
	for rows.Next() {
		var nonce uint64
		var hash string
		if err := rows.Scan(&nonce, &hash); err != nil {
			t.Fatal(err)
		}
		if nonce != want {
			t.Fatalf("stored nonces jump from %d to %d", want-1, nonce)
		}
		if hash != byNonce[nonce].Hash.Hex() {
			t.Fatalf("nonce %d stored as %s, returned as %s", nonce, hash, byNonce[nonce].Hash.Hex())
		}
		want++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want != concurrentSigns {
		t.Fatalf("%d stored transactions, want %d", want, concurrentSigns)
	}
	if next := f.nextNonce(f.sender); next != concurrentSigns {
		t.Fatalf("nonce lane at %d, want %d", next, concurrentSigns)
	}

	// In nonce order, as the pool only keeps a short run of gapped nonces per account.
	for _, s := range byNonce {
		if _, err := f.bc.Sender.Send(f.ctx, s.WorkflowID, s.Step); err != nil {
			t.Fatalf("sending nonce %d: %v", s.Nonce, err)
		}
	}
	// A block holds them all at the default 60M gas limit; allow a few in case it does not.
	for range 5 {
		f.sim.Commit()
		if n, err := f.client.NonceAt(f.ctx, f.sender, nil); err == nil && n == concurrentSigns {
			break
		}
	}
	for _, s := range byNonce {
		f.requireSuccess(s.Hash)
	}
	if got := f.tokenBalance(recipient); got.Int64() != concurrentSigns*units {
		t.Fatalf("recipient holds %s, want %d", got, concurrentSigns*units)
	}
	t.Logf("%d concurrent signatures in %s, all mined in %s total", concurrentSigns, signedIn, time.Since(start))
}

func TestSignTransferRefusesWhatCannotPay(t *testing.T) {
	f := newChainFixture(t)

	tooMuch := f.request("wf-too-much", 0)
	tooMuch.Units = new(big.Int).Add(senderTokens, big.NewInt(1))

	noGas := f.request("wf-no-gas", 1)
	noGas.From = f.broke // tokens, no ether

	for _, tc := range []struct {
		name string
		bc   *evm.Broadcaster
		req  evm.TransferRequest
		want error
	}{
		{"insufficient token", f.bc, tooMuch, chain.ErrInsufficientToken},
		{"insufficient gas", f.bc, noGas, chain.ErrInsufficientGas},
		{"fee above cap", f.newBroadcaster(big.NewInt(1)), f.request("wf-fee-cap", 1), chain.ErrFeeCapExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.bc.Signer.SignTransfer(f.ctx, tc.req)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if n := f.count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id=?", tc.req.WorkflowID); n != 0 {
				t.Fatalf("%d signed_txs rows stored for a refused transfer", n)
			}
			if _, err := tc.bc.Sender.Send(f.ctx, tc.req.WorkflowID, tc.req.Step); !errors.Is(err, chain.ErrNotSigned) {
				t.Fatalf("send of a refused transfer: %v, want ErrNotSigned", err)
			}
		})
	}
	if n := f.count("SELECT COUNT(*) FROM nonces"); n != 0 {
		t.Fatalf("refused transfers opened %d nonce lanes", n)
	}
	if n := f.keys.calls.Load(); n != 0 {
		t.Fatalf("refused transfers opened a key %d times", n)
	}
}
