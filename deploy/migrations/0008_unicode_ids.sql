-- Identifiers that carry a business's queue_id (workflow ids, reservation keys,
-- journal keys and references, outbox message ids) hold any Unicode text the
-- protocol accepts: 1–128 characters, non-ASCII included. They are
-- utf8mb4 with a binary collation: "A1" and "a1" are different queue_ids, and
-- comparing them never mixes collations. Sizes leave room for the prefixes
-- payflow adds ("withdraw-", "reserve:", "/result").
ALTER TABLE reservations
  MODIFY queue_id    VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  MODIFY workflow_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
ALTER TABLE journal
  MODIFY idem_key  VARCHAR(400) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  MODIFY reference VARCHAR(400) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '';
ALTER TABLE signed_txs
  MODIFY workflow_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
ALTER TABLE tracked_txs
  MODIFY workflow_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
ALTER TABLE outbox
  MODIFY message_id VARCHAR(400) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
