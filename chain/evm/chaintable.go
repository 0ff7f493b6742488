package evm

import (
	"database/sql"
	"fmt"
)

// chainTable is what each of this package's per-chain stores (Lanes,
// TxStore, Tracked) holds: the chain's protocol name, which every statement
// filters on, and the database.
type chainTable struct {
	chain string
	db    *sql.DB
}

// newChainTable wires a store S of one chain; what names it in the error
// when the chain name or the database is missing.
func newChainTable[S ~struct{ chainTable }](what, chainName string, db *sql.DB) (*S, error) {
	if chainName == "" || db == nil {
		return nil, fmt.Errorf("%s: chain name and database are required", what)
	}
	return &S{chainTable{chain: chainName, db: db}}, nil
}
