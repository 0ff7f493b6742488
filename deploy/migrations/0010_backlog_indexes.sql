-- The metrics sampler reads the outbox backlog and the never-broadcast part
-- of the nonce backlog every few seconds: index what it filters on, so it
-- never scans the whole table.
ALTER TABLE outbox ADD KEY IF NOT EXISTS ix_outbox_unpublished (published_at);
ALTER TABLE signed_txs ADD KEY IF NOT EXISTS ix_signed_state (chain, state);
