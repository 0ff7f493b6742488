package evm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"payflow/chain"
	"payflow/chain/evm"
)

// TestTxStoreOneRowPerAttempt: an attempt is stored once (a second insert of
// the same attempt, or of the same bytes, is ErrAttemptExists); Stored is the
// latest attempt, Attempts all of them in order, AtNonce the latest on the
// nonce; an insert rolled back with its transaction leaves nothing.
func TestTxStoreOneRowPerAttempt(t *testing.T) {
	f := newChainFixture(t)
	store := f.BC.Store
	const wf, step = "wf-store", "transfer"
	if _, err := store.Stored(f.Ctx, wf, step); !errors.Is(err, chain.ErrNotSigned) {
		t.Fatalf("Stored before any insert: %v, want ErrNotSigned", err)
	}
	if _, err := store.Attempts(f.Ctx, wf, step); !errors.Is(err, chain.ErrNotSigned) {
		t.Fatalf("Attempts before any insert: %v, want ErrNotSigned", err)
	}

	tx, err := f.DB.BeginTx(f.Ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Insert(f.Ctx, tx, wf, step, 0, f.Sender, f.SignedAt(3, 2e9)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id=?", wf); n != 0 {
		t.Fatalf("%d rows after a rolled back insert", n)
	}

	first, second := f.SignedAt(3, 2e9), f.SignedAt(3, 3e9)
	orig, err := store.Insert(f.Ctx, nil, wf, step, 0, f.Sender, first)
	if err != nil {
		t.Fatal(err)
	}
	if orig.Nonce != 3 || orig.Hash != first.Hash() || orig.From != f.Sender || orig.Attempt != 0 {
		t.Fatalf("inserted %+v", orig)
	}
	if _, err := store.Insert(f.Ctx, nil, wf, step, 0, f.Sender, second); !errors.Is(err, evm.ErrAttemptExists) {
		t.Fatalf("attempt 0 again: %v, want ErrAttemptExists", err)
	}
	if _, err := store.Insert(f.Ctx, nil, "wf-other", step, 0, f.Sender, first); !errors.Is(err, evm.ErrAttemptExists) {
		t.Fatalf("the same bytes for another step: %v, want ErrAttemptExists", err)
	}
	if _, err := store.Insert(f.Ctx, nil, wf, step, 1, f.Sender, second); err != nil {
		t.Fatal(err)
	}

	latest, err := store.Stored(f.Ctx, wf, step)
	if err != nil || latest.Attempt != 1 || latest.Hash != second.Hash() {
		t.Fatalf("Stored: %+v (%v), want attempt 1", latest, err)
	}
	all, err := store.Attempts(f.Ctx, wf, step)
	if err != nil || len(all) != 2 || all[0].Hash != first.Hash() || !bytes.Equal(all[1].Raw, latest.Raw) {
		t.Fatalf("Attempts: %+v (%v)", all, err)
	}
	holder, err := store.AtNonce(f.Ctx, f.Sender, 3)
	if err != nil || holder.WorkflowID != wf || holder.Attempt != 1 || holder.State != "signed" || holder.Filler {
		t.Fatalf("AtNonce: %+v (%v)", holder, err)
	}
	if _, err := store.AtNonce(f.Ctx, f.Sender, 4); !errors.Is(err, chain.ErrNotSigned) {
		t.Fatalf("AtNonce of an unused nonce: %v, want ErrNotSigned", err)
	}

	for range 2 {
		if err := store.MarkSent(f.Ctx, first.Hash()); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id=? AND state='sent'", wf); n != 1 {
		t.Fatalf("%d rows sent, want attempt 0 only", n)
	}
}

// TestTxStoreCancelStoresOneFiller: cancelling a step stores the filler on
// its nonce and fails the step in one go; cancelling again keeps the first
// filler.
func TestTxStoreCancelStoresOneFiller(t *testing.T) {
	f := newChainFixture(t)
	store := f.BC.Store
	if _, err := store.Insert(f.Ctx, nil, "wf-gone", "transfer", 0, f.Sender, f.SignedAt(0, 2e9)); err != nil {
		t.Fatal(err)
	}
	filler, err := store.Cancel(f.Ctx, "wf-gone", "transfer", f.Sender, f.SignedAt(0, 3e9))
	if err != nil {
		t.Fatal(err)
	}
	if filler.Nonce != 0 || filler.From != f.Sender || filler.WorkflowID != "nonce-gap-"+evm.Lower(f.Sender) {
		t.Fatalf("filler %+v", filler)
	}
	if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE workflow_id='wf-gone' AND state='failed'"); n != 1 {
		t.Fatal("the cancelled step is not marked failed")
	}
	again, err := store.Cancel(f.Ctx, "wf-gone", "transfer", f.Sender, f.SignedAt(0, 4e9))
	if err != nil || again.Hash != filler.Hash {
		t.Fatalf("second cancel stored %s (%v), want the first filler %s", again.Hash.Hex(), err, filler.Hash.Hex())
	}
	holder, err := store.AtNonce(f.Ctx, f.Sender, 0)
	if err != nil || !holder.Filler {
		t.Fatalf("AtNonce after the cancel: %+v (%v), want the filler", holder, err)
	}
}

// TestMarkSentManyDoesNotWaitForABatchBeingSigned: marking a send batch sent
// touches only the rows it names. A scan of the table (the optimizer's pick
// for a small table) waited for the rows a batch of signatures had inserted
// and not yet committed, and its next-key locks then blocked that batch's
// next insert: a deadlock that `make bench` met under load, failing the
// sends of a whole batch after its retries.
func TestMarkSentManyDoesNotWaitForABatchBeingSigned(t *testing.T) {
	f := newChainFixture(t)
	store := f.BC.Store
	var sent []common.Hash
	for _, n := range []uint64{1, 5, 7, 9} { // committed, and sent to the node
		tx := f.SignedAt(n, 2e9)
		if _, err := store.Insert(f.Ctx, nil, fmt.Sprintf("wf-%d", n), "transfer", 0, f.Sender, tx); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, tx.Hash())
	}
	batch, err := f.DB.BeginTx(f.Ctx, nil) // a batch of signatures, open
	if err != nil {
		t.Fatal(err)
	}
	defer batch.Rollback()
	if _, err := store.Insert(f.Ctx, batch, "wf-3", "transfer", 0, f.Sender, f.SignedAt(3, 2e9)); err != nil {
		t.Fatal(err)
	}
	// The open batch holds wf-3 while the marking runs: it must not wait
	// for it (it would until its context ends).
	ctx, cancel := context.WithTimeout(f.Ctx, 20*time.Second)
	defer cancel()
	if err := store.MarkSentMany(ctx, sent); err != nil {
		t.Fatalf("marking committed transactions sent while a batch of signatures is open: %v", err)
	}
	if _, err := store.Insert(f.Ctx, batch, "wf-2", "transfer", 0, f.Sender, f.SignedAt(2, 2e9)); err != nil {
		t.Fatalf("the batch's next signature: %v", err)
	}
	if err := batch.Commit(); err != nil {
		t.Fatal(err)
	}
	if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE state='sent'"); n != len(sent) {
		t.Fatalf("%d rows sent, want %d", n, len(sent))
	}
	if n := f.Count("SELECT COUNT(*) FROM signed_txs WHERE state='signed'"); n != 2 {
		t.Fatalf("%d rows signed, want the batch's 2", n)
	}
}
