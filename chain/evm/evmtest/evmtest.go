// Package evmtest holds the fixtures the EVM packages' tests share: a
// simulated chain with TestUSDT deployed and a broadcaster over a fresh
// database (Chain), and a confirmation tracker over it with a recording
// notifier (Tracker). Only tests import it.
package evmtest

import (
	"context"
	"crypto/ecdsa"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ethereum/go-ethereum/accounts/abi/bind"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient/simulated"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/params"
	"payflow/chain"
	"payflow/chain/evm"
	"payflow/chain/evm/send"
	"payflow/chain/evm/watch"
	"payflow/chain/token"
	"payflow/custody/signerapi"
	"payflow/internal/stacktest"
	"payflow/ledger"
)

// Fixed test keys: the deployer owns the token; the sender is the hot wallet
// under test; the broke wallet holds tokens but no ether.
const (
	DeployerKeyHex = "6f18fa8eb4ce0e480fded9ea37e346c9b1aac2c94b2d1824e68c0762b562937e"
	SenderKeyHex   = "cfc49903bcb76c2963076277f710fca59125c5df5394c235173464ec876c5614"
	BrokeKeyHex    = "d46f8652aacab8a06c48629f6bb4d16ff90e8a050d78240aff2d1e53a74ce219"

	ChainName = "ETH"
	// SimChainID is the simulated backend's fixed chain id.
	SimChainID = 1337
)

// MustKey parses a hex private key or fails t.
func MustKey(t testing.TB, hexKey string) *ecdsa.PrivateKey {
	t.Helper()
	k, err := crypto.HexToECDSA(hexKey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// DiscardLog is a logger that writes nothing.
func DiscardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// LocalSigner is a send.TxSigner over local keys, for tests on the
// simulated backend and the bench only (payflow's processes sign through
// payflow-signer): it signs whatever it is asked with From's key, and keeps
// every request so a test can see what was asked.
type LocalSigner struct {
	Keys  map[string]*ecdsa.PrivateKey // lowercase address → key
	Calls atomic.Int64                 // Sign calls
	mu    sync.Mutex
	asked []signerapi.SignRequest
}

// NewLocalSigner holds keys, by their lowercase addresses.
func NewLocalSigner(keys ...*ecdsa.PrivateKey) *LocalSigner {
	f := &LocalSigner{Keys: map[string]*ecdsa.PrivateKey{}}
	for _, k := range keys {
		f.Keys[evm.Lower(crypto.PubkeyToAddress(k.PublicKey))] = k
	}
	return f
}

// Sign implements send.TxSigner. An address it holds no key of is
// signerapi.ErrUnknownKey, as payflow-signer answers it.
func (f *LocalSigner) Sign(_ context.Context, req signerapi.SignRequest) (signerapi.SignResponse, error) {
	f.Calls.Add(1)
	f.mu.Lock()
	f.asked = append(f.asked, req)
	f.mu.Unlock()
	k, ok := f.Keys[strings.ToLower(req.From)]
	if !ok {
		return signerapi.SignResponse{}, &signerapi.Error{Code: signerapi.CodeUnknownKey, Message: "no key for " + req.From}
	}
	return SignLocally(k, req)
}

// Asked returns every request so far.
func (f *LocalSigner) Asked() []signerapi.SignRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]signerapi.SignRequest(nil), f.asked...)
}

// SignLocally signs req's transaction with key, on req's chain id.
func SignLocally(key *ecdsa.PrivateKey, req signerapi.SignRequest) (signerapi.SignResponse, error) {
	inner, err := DynamicFeeTx(req)
	if err != nil {
		return signerapi.SignResponse{}, &signerapi.Error{Code: signerapi.CodeBadRequest, Message: err.Error()}
	}
	tx, err := types.SignNewTx(key, types.LatestSignerForChainID(inner.ChainID), inner)
	if err != nil {
		return signerapi.SignResponse{}, err
	}
	raw, err := tx.MarshalBinary()
	if err != nil {
		return signerapi.SignResponse{}, err
	}
	return signerapi.SignResponse{Raw: hexutil.Encode(raw), TxHash: tx.Hash().Hex()}, nil
}

// DynamicFeeTx is the transaction req asks to sign.
func DynamicFeeTx(req signerapi.SignRequest) (*types.DynamicFeeTx, error) {
	num := func(field, s string) (*big.Int, error) {
		n, ok := new(big.Int).SetString(s, 10)
		if !ok {
			return nil, fmt.Errorf("%s %q is not a decimal", field, s)
		}
		return n, nil
	}
	value, err := num("value", req.Tx.Value)
	if err != nil {
		return nil, err
	}
	tip, err := num("tip_cap", req.Tx.TipCap)
	if err != nil {
		return nil, err
	}
	feeCap, err := num("fee_cap", req.Tx.FeeCap)
	if err != nil {
		return nil, err
	}
	var data []byte
	if req.Tx.Data != "" && req.Tx.Data != "0x" {
		if data, err = hexutil.Decode(req.Tx.Data); err != nil {
			return nil, fmt.Errorf("data: %w", err)
		}
	}
	to := common.HexToAddress(req.Tx.To)
	return &types.DynamicFeeTx{ChainID: big.NewInt(req.ChainID), Nonce: req.Tx.Nonce, GasTipCap: tip, GasFeeCap: feeCap,
		Gas: req.Tx.Gas, To: &to, Value: value, Data: data}, nil
}

// Chain is a simulated chain with TestUSDT deployed and minted to the
// sender and the broke wallet, a fresh database, and a broadcaster.
type Chain struct {
	T      testing.TB
	Ctx    context.Context
	Sim    *simulated.Backend
	Client simulated.Client
	DB     *sql.DB
	Signer *LocalSigner
	BC     *send.Broadcaster
	USDT   *token.TestUSDT
	Token  common.Address
	Sender common.Address
	Broke  common.Address
}

// NewChain starts a simulated chain with TestUSDT deployed and minted, a
// fresh database and a broadcaster over them (closed when t ends).
func NewChain(t testing.TB) *Chain {
	t.Helper()
	ctx := context.Background()
	deployerKey, senderKey, brokeKey := MustKey(t, DeployerKeyHex), MustKey(t, SenderKeyHex), MustKey(t, BrokeKeyHex)
	deployer := crypto.PubkeyToAddress(deployerKey.PublicKey)
	f := &Chain{T: t, Ctx: ctx,
		Sender: crypto.PubkeyToAddress(senderKey.PublicKey),
		Broke:  crypto.PubkeyToAddress(brokeKey.PublicKey),
	}
	ether := new(big.Int).Exp(big.NewInt(10), big.NewInt(21), nil) // 1000 ETH
	f.Sim = simulated.NewBackend(types.GenesisAlloc{
		deployer:   {Balance: ether},
		f.Sender:   {Balance: ether},
		FalseToken: {Code: FalseTokenCode},
		FeeToken:   {Code: FeeTokenCode},
	})
	t.Cleanup(func() { f.Sim.Close() })
	f.Client = f.Sim.Client()

	auth, err := bind.NewKeyedTransactorWithChainID(deployerKey, big.NewInt(SimChainID))
	if err != nil {
		t.Fatal(err)
	}
	var tx *types.Transaction
	f.Token, tx, f.USDT, err = token.DeployTestUSDT(auth, f.Client)
	if err != nil {
		t.Fatalf("deploying TestUSDT: %v", err)
	}
	f.Sim.Commit()
	f.RequireSuccess(tx.Hash())
	for _, to := range []common.Address{f.Sender, f.Broke} {
		tx, err := f.USDT.Mint(auth, to, SenderTokens)
		if err != nil {
			t.Fatalf("minting: %v", err)
		}
		f.Sim.Commit()
		f.RequireSuccess(tx.Hash())
	}

	f.DB = TestDB(t)
	f.Signer = NewLocalSigner(senderKey, brokeKey)
	f.BC = f.NewBroadcaster(MaxFeeWei)
	return f
}

// NewBroadcaster is a broadcaster over the fixture's database, node and
// signer with fee cap maxFee.
func (f *Chain) NewBroadcaster(maxFee *big.Int) *send.Broadcaster {
	f.T.Helper()
	bc, err := send.NewBroadcaster(send.BroadcasterConfig{Chain: ChainName, ChainID: big.NewInt(SimChainID),
		MaxFeeWei: maxFee}, f.DB, f.Client, f.Signer, DiscardLog())
	if err != nil {
		f.T.Fatal(err)
	}
	return bc
}

// RequireSuccess fails unless hash is mined with status 1, and returns its
// receipt.
func (f *Chain) RequireSuccess(hash common.Hash) *types.Receipt {
	f.T.Helper()
	r, err := f.Client.TransactionReceipt(f.Ctx, hash)
	if err != nil {
		f.T.Fatalf("receipt of %s: %v", hash.Hex(), err)
	}
	if r.Status != types.ReceiptStatusSuccessful {
		f.T.Fatalf("%s reverted in block %d", hash.Hex(), r.BlockNumber)
	}
	return r
}

// TokenBalance is owner's TestUSDT balance.
func (f *Chain) TokenBalance(owner common.Address) *big.Int {
	f.T.Helper()
	b, err := f.USDT.BalanceOf(&bind.CallOpts{Context: f.Ctx}, owner)
	if err != nil {
		f.T.Fatal(err)
	}
	return b
}

// Request is a transfer of units of TestUSDT from the sender to Recipient,
// step "transfer" of workflowID.
func (f *Chain) Request(workflowID string, units int64) send.TransferRequest {
	return send.TransferRequest{WorkflowID: workflowID, Step: "transfer", From: f.Sender, To: Recipient,
		Token: f.Token, Units: big.NewInt(units)}
}

// Count runs a COUNT query on the fixture's database.
func (f *Chain) Count(query string, args ...any) int {
	f.T.Helper()
	var n int
	if err := f.DB.QueryRowContext(f.Ctx, query, args...).Scan(&n); err != nil {
		f.T.Fatalf("%s: %v", query, err)
	}
	return n
}

// NextNonce returns the stored nonce lane of addr, or -1 when it has none.
func (f *Chain) NextNonce(addr common.Address) int64 {
	f.T.Helper()
	lanes, err := evm.NewLanes(ChainName, f.DB)
	if err != nil {
		f.T.Fatal(err)
	}
	all, err := lanes.List(f.Ctx)
	if err != nil {
		f.T.Fatal(err)
	}
	for _, l := range all {
		if l.Address == addr {
			return int64(l.Next)
		}
	}
	return -1
}

// SignAndSend signs req and sends it, failing on any error.
func (f *Chain) SignAndSend(req send.TransferRequest) evm.SignedTx {
	f.T.Helper()
	stx, err := f.BC.Signer.SignTransfer(f.Ctx, req)
	if err != nil {
		f.T.Fatalf("signing %s/%s: %v", req.WorkflowID, req.Step, err)
	}
	if _, err := f.BC.Sender.Send(f.Ctx, req.WorkflowID, req.Step); err != nil {
		f.T.Fatalf("sending %s/%s: %v", req.WorkflowID, req.Step, err)
	}
	return stx
}

// TestDB creates a fresh, migrated payflow_test_chain_<random> database on the
// stack's MariaDB and drops it when the test ends. A missing stack fails the
// test: these tests claim real SQL semantics (row locks, unique keys).
func TestDB(t testing.TB) *sql.DB {
	t.Helper()
	db := stacktest.TestDB(t, "chain")
	db.SetMaxOpenConns(20) // the worker's default (config.DBConfig.MaxOpenConns); the server is shared
	if err := ledger.Migrate(context.Background(), db); err != nil {
		t.Fatalf("migrating: %v", err)
	}
	return db
}

// Confirmations is how deep the fixture's tracker confirms.
const Confirmations = 3

// Notified is one delivery to a Notifier.
type Notified struct {
	WorkflowID string
	Ev         chain.TxEvent
}

// String prints the delivery for a failure message.
func (n Notified) String() string {
	return fmt.Sprintf("%s:%s@%d/%s ok=%v", n.WorkflowID, n.Ev.Milestone, n.Ev.BlockNumber, short(n.Ev.BlockHash), n.Ev.Succeeded)
}

func short(h string) string {
	if len(h) > 10 {
		return h[:10]
	}
	return h
}

// Recorder is a Notifier that records every delivery. Workflows in gone answer
// ErrOwnerGone; failNext makes the next delivery fail (and still records it).
type Recorder struct {
	Mu       sync.Mutex // guards the fields a test sets while the tracker runs
	got      []Notified
	Gone     map[string]bool
	FailNext error
	Ch       chan Notified // optional: every delivery is also sent here
}

// NotifyTx implements chain.Notifier.
func (r *Recorder) NotifyTx(_ context.Context, workflowID string, ev chain.TxEvent) error {
	r.Mu.Lock()
	n := Notified{workflowID, ev}
	r.got = append(r.got, n)
	err := r.FailNext
	r.FailNext = nil
	if r.Gone[workflowID] {
		err = chain.ErrOwnerGone
	}
	ch := r.Ch
	r.Mu.Unlock()
	if ch != nil {
		ch <- n
	}
	return err
}

// Take returns what was delivered since the last Take.
func (r *Recorder) Take() []Notified {
	r.Mu.Lock()
	defer r.Mu.Unlock()
	got := r.got
	r.got = nil
	return got
}

// Want describes an expected delivery; an empty blockHash is not compared.
type Want struct {
	Milestone   chain.Milestone
	BlockNumber uint64
	BlockHash   common.Hash
	Succeeded   bool
}

// Expect fails t unless got is exactly wants, for workflowID and txHash.
func Expect(t testing.TB, got []Notified, workflowID, txHash string, wants ...Want) {
	t.Helper()
	if len(got) != len(wants) {
		t.Fatalf("got %d notifications %v, want %d", len(got), got, len(wants))
	}
	for i, w := range wants {
		g := got[i]
		if g.WorkflowID != workflowID || g.Ev.TxHash != txHash || g.Ev.Milestone != w.Milestone ||
			g.Ev.BlockNumber != w.BlockNumber || g.Ev.Succeeded != w.Succeeded ||
			(w.BlockHash != (common.Hash{}) && g.Ev.BlockHash != w.BlockHash.Hex()) {
			t.Fatalf("notification %d is %vwant %s:%s@%d/%s ok=%v", i, g, workflowID, w.Milestone, w.BlockNumber,
				short(w.BlockHash.Hex()), w.Succeeded)
		}
	}
}

// Tracker is a confirmation tracker over a Chain, telling a Recorder.
type Tracker struct {
	Chain    *Chain
	Rec      *Recorder
	Tracking *watch.Tracker
}

// NewTracker is a Tracker over a new Chain.
func NewTracker(t *testing.T) *Tracker {
	t.Helper()
	f := NewChain(t)
	rec := &Recorder{Gone: map[string]bool{}}
	dial := func(context.Context) (watch.HeadSubscriber, error) { return f.Client, nil }
	tr, err := watch.NewTracker(watch.TrackerConfig{Chain: ChainName, Confirmations: Confirmations}, f.DB, f.Client, dial,
		rec, DiscardLog())
	if err != nil {
		t.Fatal(err)
	}
	return &Tracker{Chain: f, Rec: rec, Tracking: tr}
}

// Head returns the current head's number and hash.
func (f *Tracker) Head() (uint64, common.Hash) {
	f.Chain.T.Helper()
	h, err := f.Chain.Client.HeaderByNumber(f.Chain.Ctx, nil)
	if err != nil {
		f.Chain.T.Fatal(err)
	}
	return h.Number.Uint64(), h.Hash()
}

// Check runs the tracker against the current head.
func (f *Tracker) Check() {
	f.Chain.T.Helper()
	n, _ := f.Head()
	if err := f.Tracking.CheckOnce(f.Chain.Ctx, n); err != nil {
		f.Chain.T.Fatalf("CheckOnce(%d): %v", n, err)
	}
}

// State is the recorded state of hash's tracked row.
func (f *Tracker) State(hash common.Hash) string {
	return f.TrackedState(hash, "")
}

// SendTracked signs, sends and tracks a transfer of units for workflowID.
func (f *Tracker) SendTracked(workflowID string, units int64) common.Hash {
	f.Chain.T.Helper()
	stx := f.Chain.SignAndSend(f.Chain.Request(workflowID, units))
	if err := evm.TrackTx(f.Chain.Ctx, f.Chain.DB, ChainName, stx.Hash, workflowID); err != nil {
		f.Chain.T.Fatal(err)
	}
	if err := evm.TrackTx(f.Chain.Ctx, f.Chain.DB, ChainName, stx.Hash, workflowID); err != nil { // idempotent
		f.Chain.T.Fatalf("tracking again: %v", err)
	}
	return stx.Hash
}

// MineThenFork mines hash in block N (the tracker sees it there), adds one
// block, then forks back to N-1.
func (f *Tracker) MineThenFork(hash common.Hash) (bn uint64, minedAt common.Hash) {
	f.Chain.T.Helper()
	parentNumber, parent := f.Head()
	minedAt = f.Chain.Sim.Commit()
	r := f.Chain.RequireSuccess(hash)
	bn = r.BlockNumber.Uint64()
	if bn != parentNumber+1 || r.BlockHash != minedAt {
		f.Chain.T.Fatalf("mined in %d/%s, Want %d/%s", bn, r.BlockHash.Hex(), parentNumber+1, minedAt.Hex())
	}
	f.Check()
	Expect(f.Chain.T, f.Rec.Take(), "wf-reorg", hash.Hex(), Want{chain.MilestoneSeen, bn, minedAt, true})
	f.Chain.Sim.Commit() // one confirmation more on the old branch; still short of Confirmations
	f.Check()
	Expect(f.Chain.T, f.Rec.Take(), "wf-reorg", hash.Hex())

	if err := f.Chain.Sim.Fork(parent); err != nil {
		f.Chain.T.Fatalf("forking at %d: %v", parentNumber, err)
	}
	if n, h := f.Head(); n != parentNumber || h != parent {
		f.Chain.T.Fatalf("head after Fork is %d/%s, Want %d/%s", n, h.Hex(), parentNumber, parent.Hex())
	}
	return bn, minedAt
}

// TrackedState is the recorded state of hash's row for workflowID (any
// workflow's when "").
func (f *Tracker) TrackedState(hash common.Hash, workflowID string) string {
	f.Chain.T.Helper()
	tracked, err := evm.NewTracked(ChainName, f.Chain.DB)
	if err != nil {
		f.Chain.T.Fatal(err)
	}
	s, err := tracked.StateOf(f.Chain.Ctx, hash.Hex(), workflowID)
	if err != nil {
		f.Chain.T.Fatal(err)
	}
	return s
}

var (
	// Recipient holds nothing and is never a sender.
	Recipient = common.HexToAddress("0x00000000000000000000000000000000000fee01")
	// SenderTokens is what the sender and the broke wallet are minted: 1,000,000 USDT.
	SenderTokens = big.NewInt(1_000_000_000_000)
	MaxFeeWei    = big.NewInt(100_000_000_000) // 100 gwei
)

// FalseToken answers every call without reverting and emits nothing:
// transfer(…) returns false (32 zero bytes), any other call (balanceOf)
// returns 2^256-1, so payflow's balance check lets the transfer be signed.
// Hand-assembled runtime code:
//
//	PUSH1 0 CALLDATALOAD PUSH1 0xe0 SHR PUSH4 0xa9059cbb EQ PUSH1 0x1a JUMPI
//	PUSH1 0 NOT PUSH1 0 MSTORE PUSH1 0x20 PUSH1 0 RETURN
//	0x1a: JUMPDEST PUSH1 0 PUSH1 0 MSTORE PUSH1 0x20 PUSH1 0 RETURN
var (
	FalseToken     = common.HexToAddress("0x00000000000000000000000000000000000fa15e")
	FalseTokenCode = hexutil.MustDecode("0x600035" + "60e01c" + "63a9059cbb" + "14" + "601a57" +
		"600019600052" + "60206000f3" + "5b" + "6000600052" + "60206000f3")
)

// FeeToken takes half of every transfer as its fee: transfer(to, amount)
// emits Transfer(sender, to, amount/2) and returns true; any other call
// (balanceOf) returns 2^256-1. Hand-assembled runtime code:
//
//	PUSH1 0 CALLDATALOAD PUSH1 0xe0 SHR PUSH4 0xa9059cbb EQ PUSH1 0x1a JUMPI
//	PUSH1 0 NOT PUSH1 0 MSTORE PUSH1 0x20 PUSH1 0 RETURN
//	0x1a: JUMPDEST PUSH1 2 PUSH1 0x24 CALLDATALOAD DIV PUSH1 0 MSTORE
//	PUSH1 4 CALLDATALOAD CALLER PUSH32 <Transfer topic> PUSH1 0x20 PUSH1 0 LOG3
//	PUSH1 1 PUSH1 0 MSTORE PUSH1 0x20 PUSH1 0 RETURN
var (
	FeeToken     = common.HexToAddress("0x00000000000000000000000000000000000fee70")
	FeeTokenCode = hexutil.MustDecode("0x600035" + "60e01c" + "63a9059cbb" + "14" + "601a57" +
		"600019600052" + "60206000f3" + "5b" +
		"6002" + "602435" + "04" + "600052" +
		"600435" + "33" + "7f" + strings.TrimPrefix(evm.TransferTopic.Hex(), "0x") + "6020" + "6000" + "a3" +
		"6001600052" + "60206000f3")
)

// SignedAt signs a 1 wei transfer from the sender to recipient on nonce,
// outside any payflow type, with the given fee cap (it tells attempts apart).
func (f *Chain) SignedAt(nonce uint64, feeCap int64) *types.Transaction {
	f.T.Helper()
	tx, err := types.SignNewTx(MustKey(f.T, SenderKeyHex), types.LatestSignerForChainID(big.NewInt(SimChainID)),
		&types.DynamicFeeTx{ChainID: big.NewInt(SimChainID), Nonce: nonce, GasTipCap: big.NewInt(1e9),
			GasFeeCap: big.NewInt(feeCap), Gas: params.TxGas, To: &Recipient, Value: big.NewInt(1)})
	if err != nil {
		f.T.Fatal(err)
	}
	return tx
}

// Stuck transactions on the simulated backend: its pool admits a tip of
// 1 wei, its miner only includes tips of at least 1 mwei, so a transfer
// signed with a 1 wei tip sits in the pool through every Commit, like an
// underpriced transaction on a live network (see send's replace tests).

// LowTipBackend is the simulated node with its tip suggestion turned down to
// 1 wei, so the broadcaster signs a transfer that will not be mined.
type LowTipBackend struct{ evm.Backend }

func (LowTipBackend) SuggestGasTipCap(context.Context) (*big.Int, error) { return big.NewInt(1), nil }

// BroadcasterWith is a broadcaster over the fixture's database with another
// backend, signer, fee cap or attempt cap.
func (f *Chain) BroadcasterWith(backend evm.Backend, signer send.TxSigner, maxFee *big.Int, maxAttempts int) *send.Broadcaster {
	f.T.Helper()
	bc, err := send.NewBroadcaster(send.BroadcasterConfig{Chain: ChainName, ChainID: big.NewInt(SimChainID),
		MaxFeeWei: maxFee, MaxAttempts: maxAttempts}, f.DB, backend, signer, DiscardLog())
	if err != nil {
		f.T.Fatal(err)
	}
	return bc
}

// SendStuck signs and sends req with a 1 wei tip, mines a block, and checks
// the transfer is still waiting in the pool.
func (f *Chain) SendStuck(req send.TransferRequest) evm.SignedTx {
	f.T.Helper()
	low := f.BroadcasterWith(LowTipBackend{f.Client}, f.Signer, MaxFeeWei, 0)
	stx, err := low.Signer.SignTransfer(f.Ctx, req)
	if err != nil {
		f.T.Fatalf("signing %s/%s: %v", req.WorkflowID, req.Step, err)
	}
	if _, err := low.Sender.Send(f.Ctx, req.WorkflowID, req.Step); err != nil {
		f.T.Fatalf("sending %s/%s: %v", req.WorkflowID, req.Step, err)
	}
	f.Sim.Commit()
	if _, err := f.Client.TransactionReceipt(f.Ctx, stx.Hash); !errors.Is(err, ethereum.NotFound) {
		f.T.Fatalf("the 1 wei tip transfer %s was not left in the pool: receipt error %v", stx.Hash.Hex(), err)
	}
	return stx
}

// RevertCode is runtime code that reverts every call (REVERT(0, 0)).
var RevertCode = []byte{0x60, 0x00, 0x60, 0x00, 0xfd}
