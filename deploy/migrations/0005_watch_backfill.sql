-- Set once an address has been backfilled and joined the watch set: from then on
-- the cursor covers it, and a restarted listener does not backfill it again.
ALTER TABLE watched_addresses ADD COLUMN IF NOT EXISTS backfilled_to BIGINT UNSIGNED NULL;
