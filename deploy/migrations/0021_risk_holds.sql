-- Deposits held by screening (owned by package risk/holds): one row per
-- deposit credited from a sender on the deny list. The money itself is held
-- by the ledger's reservation risk-hold:<chain>:<tx_hash>:<log_index>; this
-- row says why (risk, as announced), and what became of it: held, released
-- by an operator (the money is available), returning (a return to the
-- sender is under way, by return_workflow_id) or returned (return_tx_hash).
CREATE TABLE IF NOT EXISTS risk_holds (
  chain              VARCHAR(16)    NOT NULL,
  tx_hash            CHAR(66)       NOT NULL,
  log_index          INT UNSIGNED   NOT NULL,
  address            VARCHAR(128)   NOT NULL,
  symbol             VARCHAR(16)    NOT NULL,
  amount             DECIMAL(65,18) NOT NULL,
  sender             VARCHAR(128)   NOT NULL,
  risk               VARCHAR(1024)  NOT NULL,
  state              ENUM('held','released','returning','returned') NOT NULL DEFAULT 'held',
  return_workflow_id VARCHAR(255)   NULL,
  return_tx_hash     CHAR(66)       NULL,
  held_at            TIMESTAMP(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at         TIMESTAMP(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (chain, tx_hash, log_index),
  KEY risk_holds_state (state, chain, symbol)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
