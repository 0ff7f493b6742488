-- The transactions a Bitcoin chain's tracker follows for their workflows
-- (owned by package chain/btc): what it last told the owner (nothing, seen
-- in block_hash, or confirmed there) and whether it is done with it (told
-- confirmed, or the owner is gone). Tracking again re-arms a done row.
CREATE TABLE IF NOT EXISTS btc_tracked (
  chain            VARCHAR(16)     NOT NULL,
  txid             CHAR(64)        NOT NULL,
  workflow_id      VARCHAR(255)    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  every_milestone  BOOLEAN         NOT NULL,
  told             ENUM('none','seen','confirmed') NOT NULL DEFAULT 'none',
  block_hash       CHAR(64)        NULL,
  done             BOOLEAN         NOT NULL DEFAULT FALSE,
  created_at       TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at       TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (chain, txid, workflow_id),
  KEY ix_btc_tracked_open (chain, done)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;
