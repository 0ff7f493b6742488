package activities

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"payflow/chain"
)

// storeOfOne is a chain.Transfers whose store holds one attempt of a step;
// it counts the reads of it and keeps what was sent.
type storeOfOne struct {
	chain.Transfers // nil: any other call fails the test with a panic
	stored          chain.Signed
	reads           int
	sent            []chain.Signed
}

func (s *storeOfOne) Stored(context.Context, string, string) (chain.Signed, error) {
	s.reads++
	return s.stored, nil
}

func (s *storeOfOne) Track(context.Context, string, string, bool) error { return nil }

func (s *storeOfOne) Send(_ context.Context, stx chain.Signed) error {
	s.sent = append(s.sent, stx)
	return nil
}

// TestBroadcastSendsTheAttemptJustSignedWithoutReadingTheStore: the attempt
// a sign activity returned is sent by the Broadcast naming its hash without
// a read of the store, once; a Broadcast naming another hash (a replacement
// was stored since) or none reads the store and sends what it holds.
func TestBroadcastSendsTheAttemptJustSignedWithoutReadingTheStore(t *testing.T) {
	ctx := context.Background()
	first := chain.Signed{WorkflowID: "withdraw-q1", Step: "transfer", TxHash: "0xAA", Raw: []byte{1}, State: "signed"}
	latest := chain.Signed{WorkflowID: "withdraw-q1", Step: "transfer", Attempt: 1, TxHash: "0xbb", Raw: []byte{2},
		State: "signed"}
	store := &storeOfOne{stored: latest}
	a := &Activities{Chain: "ETH", Transfers: store}
	in := BroadcastInput{WorkflowID: "withdraw-q1", Step: "transfer"}

	a.signed.remember(first)
	in.TxHash = "0xaa" // the hash in any case
	res, err := a.Broadcast(ctx, in)
	require.NoError(t, err)
	require.Equal(t, "0xAA", res.TxHash)
	require.Zero(t, store.reads, "read the store for the attempt just signed")
	require.Equal(t, []byte{1}, store.sent[0].Raw)

	// Taken once: the same Broadcast again (a retry) reads the store.
	_, err = a.Broadcast(ctx, in)
	require.NoError(t, err)
	require.Equal(t, 1, store.reads)
	require.Equal(t, []byte{2}, store.sent[1].Raw)

	// Remembered, but the workflow names another attempt: the store's.
	a.signed.remember(first)
	in.TxHash = "0xbb"
	_, err = a.Broadcast(ctx, in)
	require.NoError(t, err)
	require.Equal(t, 2, store.reads)
	require.Equal(t, []byte{2}, store.sent[2].Raw)

	// A workflow that names no hash (started before it did): the store's.
	in.TxHash = ""
	_, err = a.Broadcast(ctx, in)
	require.NoError(t, err)
	require.Equal(t, 3, store.reads)

	// Another step of the same workflow never takes this one's attempt.
	a.signed.remember(first)
	_, err = a.Broadcast(ctx, BroadcastInput{WorkflowID: "withdraw-q1", Step: "sweep", TxHash: "0xaa"})
	require.NoError(t, err)
	require.Equal(t, 4, store.reads)
}

// TestJustSignedIsBounded: entries whose broadcast never came do not pile up.
func TestJustSignedIsBounded(t *testing.T) {
	var j justSigned
	for i := range justSignedLimit + 10 {
		j.remember(chain.Signed{WorkflowID: "wf", Step: "transfer", TxHash: string(rune('a'+i%26)) + string(rune(i)), Raw: []byte{1}})
	}
	require.LessOrEqual(t, len(j.m), justSignedLimit)
}
