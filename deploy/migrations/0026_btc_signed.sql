-- A Bitcoin payment's signed transactions (owned by package chain/btc),
-- stored before the first is sent and keyed by (chain, workflow_id, step,
-- attempt): a retry sends the stored bytes again and never signs anew;
-- attempt > 0 are replacements at a higher fee on the same inputs.
CREATE TABLE IF NOT EXISTS btc_signed (
  chain        VARCHAR(16)     NOT NULL,
  workflow_id  VARCHAR(255)    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  step         VARCHAR(64)     NOT NULL,
  attempt      INT UNSIGNED    NOT NULL,
  txid         CHAR(64)        NOT NULL,
  raw          MEDIUMBLOB      NOT NULL,
  fee_rate     BIGINT          NOT NULL,
  fee          BIGINT          NOT NULL,
  state        ENUM('signed','sent') NOT NULL DEFAULT 'signed',
  created_at   TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (chain, workflow_id, step, attempt),
  UNIQUE KEY uq_btc_signed_txid (chain, txid)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;
