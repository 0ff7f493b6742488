-- Everything stored about a transaction is keyed by its chain. One
-- address has the same nonces, and payflow names its gap fillers the same,
-- on every chain; a transaction signed without a chain id has one hash on
-- every chain. Without the chain in the keys, the second chain's row hit the
-- first chain's and that chain read the other's bytes.
-- Each statement drops and re-adds the same keys: running it twice leaves
-- the same table.
ALTER TABLE signed_txs
  DROP PRIMARY KEY,
  ADD PRIMARY KEY (chain, workflow_id, step, attempt),
  DROP INDEX IF EXISTS uq_signed_hash,
  ADD UNIQUE KEY uq_signed_hash (chain, tx_hash);
-- payflowctl finds a payment's transfers by workflow id alone (a workflow
-- runs on one chain): the primary key no longer starts with it.
ALTER TABLE signed_txs ADD KEY IF NOT EXISTS ix_signed_workflow (workflow_id, step);
ALTER TABLE tracked_txs
  DROP PRIMARY KEY,
  ADD PRIMARY KEY (chain, tx_hash, workflow_id);
