package activities_test

import (
	"database/sql"
	"testing"

	"github.com/stretchr/testify/require"

	"payflow/activities"
	"payflow/chain/evm"
	"payflow/chain/evm/family"
	"payflow/chain/evm/send"
)

// useFamily gives a the EVM family over db, backend and bc, as the worker
// wires it.
func useFamily(t testing.TB, a *activities.Activities, db *sql.DB, backend evm.Backend, bc *send.Broadcaster) {
	t.Helper()
	fam, err := family.New(a.Chain, db, backend, bc)
	require.NoError(t, err)
	a.Transfers, a.Fees, a.Balances, a.Reads = fam.Transfers, fam.Fees, fam.Balances, fam.Reads
}
