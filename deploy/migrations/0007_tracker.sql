-- The confirmation tracker checks the least recently checked open rows first,
-- so every open row is checked even when more are open than one pass takes
-- (rows never checked, NULL, come first).
ALTER TABLE tracked_txs ADD COLUMN IF NOT EXISTS checked_at TIMESTAMP(6) NULL DEFAULT NULL;
ALTER TABLE tracked_txs ADD INDEX IF NOT EXISTS ix_tracked_check (chain, state, checked_at);
