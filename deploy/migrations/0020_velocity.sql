-- Velocity limits (owned by the ledger). A payment's velocity decision is
-- taken once, after its funds are reserved: what its paying wallet sent and
-- its recipient received of the asset in the 24 h before (the decisions
-- before it whose reservations are held or settled), its own amount, the
-- limits it was checked against, and whether it is over either. A replay
-- finds the row (reservation_key is unique) and keeps its verdict. Times are
-- UTC; minute is decided_at truncated to its minute.
CREATE TABLE IF NOT EXISTS velocity_decisions (
  id              BIGINT         NOT NULL AUTO_INCREMENT PRIMARY KEY,
  reservation_key VARCHAR(255)   CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  chain           VARCHAR(16)    NOT NULL,
  symbol          VARCHAR(16)    NOT NULL,
  wallet          VARCHAR(128)   NOT NULL,
  recipient       VARCHAR(128)   NOT NULL DEFAULT '',
  -- The wallet's and the recipient's scopes in velocity_totals and
  -- velocity_locks ('' for no recipient).
  wallet_scope    VARCHAR(200)   NOT NULL,
  recipient_scope VARCHAR(200)   NOT NULL DEFAULT '',
  amount          DECIMAL(65,18) NOT NULL,
  -- What the wallet sent and the recipient received before this payment,
  -- within the window; NULL limit: none.
  wallet_sum      DECIMAL(65,18) NOT NULL DEFAULT 0,
  recipient_sum   DECIMAL(65,18) NOT NULL DEFAULT 0,
  wallet_limit    DECIMAL(65,18) NULL,
  recipient_limit DECIMAL(65,18) NULL,
  over_wallet     BOOLEAN        NOT NULL DEFAULT FALSE,
  over_recipient  BOOLEAN        NOT NULL DEFAULT FALSE,
  decided_at      DATETIME(6)    NOT NULL,
  minute          DATETIME       NOT NULL,
  UNIQUE KEY uq_velocity_reservation (reservation_key),
  KEY ix_velocity_wallet (wallet_scope, minute, id),
  KEY ix_velocity_recipient (recipient_scope, minute, id)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;

-- What each wallet sent and each recipient received per minute: the
-- amounts of the decisions of that minute whose reservations are not
-- released (a release subtracts its amount in the transaction that releases
-- it). A decision sums 24 h of these instead of every payment of the day.
CREATE TABLE IF NOT EXISTS velocity_totals (
  scope  VARCHAR(200)   NOT NULL,
  minute DATETIME       NOT NULL,
  amount DECIMAL(65,18) NOT NULL,
  PRIMARY KEY (scope, minute)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;

-- One row per wallet and per recipient of an asset that a decision was
-- taken for: a decision locks its rows (in a fixed order) so that the
-- decisions of one wallet or one recipient run one at a time.
CREATE TABLE IF NOT EXISTS velocity_locks (
  scope     VARCHAR(200) NOT NULL PRIMARY KEY,
  decisions BIGINT       NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=ascii;
