-- The operator audit trail (owned by package audit): one row per operator
-- action, append-only. Who acted (actor), through what (source: payflowctl,
-- or temporal for a signal sent straight to a workflow), what they did
-- (action) to what (subject; payment names the payment's workflow id when
-- the action concerns one), why (reason, required), what it changed
-- (changes, JSON) and how it ended (outcome).
CREATE TABLE IF NOT EXISTS operator_audit (
  id          BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
  at          TIMESTAMP(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  actor       VARCHAR(255)  NOT NULL,
  source      VARCHAR(32)   NOT NULL,
  action      VARCHAR(64)   NOT NULL,
  subject     VARCHAR(512)  NOT NULL,
  payment     VARCHAR(512)  NULL,
  reason      TEXT          NOT NULL,
  changes     TEXT          NOT NULL,
  outcome     VARCHAR(255)  NOT NULL,
  -- record_key makes a record written by a workflow step idempotent: a
  -- replayed step finds its row instead of writing a second one.
  record_key  VARCHAR(512)  NULL,
  UNIQUE KEY operator_audit_key (record_key),
  KEY operator_audit_payment (payment, id),
  KEY operator_audit_action (action, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TRIGGER IF NOT EXISTS operator_audit_no_update BEFORE UPDATE ON operator_audit FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'operator_audit is append-only: its rows are never changed';
CREATE TRIGGER IF NOT EXISTS operator_audit_no_delete BEFORE DELETE ON operator_audit FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'operator_audit is append-only: its rows are never deleted';
