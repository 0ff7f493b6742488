-- Chain-side state: nonce lanes, signed transactions (intent persisted before
-- broadcast), transactions awaiting confirmation, and the response outbox.

-- Next nonce per sending wallet. The row lock is the single writer per wallet.
CREATE TABLE IF NOT EXISTS nonces (
  chain       VARCHAR(16)     NOT NULL,
  address     CHAR(42)        NOT NULL,
  next_nonce  BIGINT UNSIGNED NOT NULL,
  updated_at  TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (chain, address)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;

-- A signed transfer, stored before its first broadcast and keyed by
-- (workflow_id, step, attempt). A retry re-sends raw; it never signs again.
-- attempt > 0 are fee-bumped replacements on the same nonce.
CREATE TABLE IF NOT EXISTS signed_txs (
  workflow_id  VARCHAR(255)    NOT NULL,
  step         VARCHAR(64)     NOT NULL,
  attempt      INT UNSIGNED    NOT NULL,
  chain        VARCHAR(16)     NOT NULL,
  from_address CHAR(42)        NOT NULL,
  to_address   CHAR(42)        NOT NULL,
  nonce        BIGINT UNSIGNED NOT NULL,
  tx_hash      CHAR(66)        NOT NULL,
  raw          MEDIUMBLOB      NOT NULL,
  max_fee_wei  DECIMAL(65,0)   NOT NULL,
  tip_wei      DECIMAL(65,0)   NOT NULL,
  state        ENUM('signed','sent','mined','failed') NOT NULL DEFAULT 'signed',
  created_at   TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (workflow_id, step, attempt),
  UNIQUE KEY uq_signed_hash (tx_hash),
  UNIQUE KEY uq_signed_nonce (chain, from_address, nonce, attempt)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;

-- Transactions the confirmation tracker follows, and whom to tell.
CREATE TABLE IF NOT EXISTS tracked_txs (
  tx_hash      CHAR(66)        NOT NULL PRIMARY KEY,
  chain        VARCHAR(16)     NOT NULL,
  workflow_id  VARCHAR(255)    NOT NULL,
  block_number BIGINT UNSIGNED NULL,
  block_hash   CHAR(66)        NULL,
  state        ENUM('pending','seen','confirmed','done') NOT NULL DEFAULT 'pending',
  created_at   TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at   TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  KEY ix_tracked_state (chain, state)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;

-- Responses, keyed by a stable message id: published at most once per id
-- unless the process dies between the broker's confirm and the mark.
CREATE TABLE IF NOT EXISTS outbox (
  message_id   VARCHAR(255) NOT NULL PRIMARY KEY,
  exchange     VARCHAR(128) NOT NULL,
  routing_key  VARCHAR(128) NOT NULL,
  body         MEDIUMBLOB   NOT NULL,
  published_at TIMESTAMP(6) NULL,
  created_at   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
