-- A step's first attempt as the worker asks payflow-signer for it, stored
-- with its nonce BEFORE the signer is asked. The nonce lane hands out the
-- nonce in the transaction that inserts the row; the signature is asked
-- afterwards, outside the lane, and stored in signed_txs. A worker that
-- dies between the two (or a signer that cannot answer) leaves the row: the
-- retry asks for exactly this transaction again, which the signer answers
-- with the signature it kept. Only package chain/evm reads and writes it.
-- state: open (asked, or to be asked), refused (the signer will not sign
-- it: its nonce is the healer's to fill), filled (the healer used its nonce
-- for a gap filler). Amounts are wei.
CREATE TABLE IF NOT EXISTS sign_intents (
  chain           VARCHAR(16)     NOT NULL,
  workflow_id     VARCHAR(255)    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  step            VARCHAR(64)     NOT NULL,
  reservation_key VARCHAR(255)    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '',
  from_address    CHAR(42)        NOT NULL,
  nonce           BIGINT UNSIGNED NOT NULL,
  to_address      CHAR(42)        NOT NULL,
  value_wei       DECIMAL(65,0)   NOT NULL,
  data            MEDIUMBLOB      NOT NULL,
  gas             BIGINT UNSIGNED NOT NULL,
  tip_wei         DECIMAL(65,0)   NOT NULL,
  max_fee_wei     DECIMAL(65,0)   NOT NULL,
  state           ENUM('open','refused','filled') NOT NULL DEFAULT 'open',
  reason          VARCHAR(1024)   CHARACTER SET utf8mb4 NOT NULL DEFAULT '',
  created_at      TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  refused_at      TIMESTAMP(6)    NULL,
  PRIMARY KEY (chain, workflow_id, step),
  UNIQUE KEY uq_sign_intents_nonce (chain, from_address, nonce)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;
