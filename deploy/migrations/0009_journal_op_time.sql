-- Reconciliation re-verifies the credits of the last hours against the chain
-- (a credited deposit reorganised deeper than the confirmations is reversed):
-- it pages through recent credits by time without scanning the journal.
ALTER TABLE journal ADD KEY ix_journal_op_time (chain, op, created_at);
