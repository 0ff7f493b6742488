-- Payments only need the "confirmed" milestone (one signal per payment);
-- deposits also want "seen" and "reorged".
ALTER TABLE tracked_txs ADD COLUMN IF NOT EXISTS notify_seen BOOLEAN NOT NULL DEFAULT TRUE;
