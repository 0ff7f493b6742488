-- A workflow step whose activity keeps failing with an error that is
-- retried (a node that refuses to answer, a database outage): one row per
-- workflow, written after a few attempts and deleted when the step gets
-- past it. Operators see it in `payflowctl payment show`, the metrics
-- sampler counts the rows still being retried (payflow_failing_steps).
CREATE TABLE IF NOT EXISTS failing_steps (
  workflow_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
  chain       VARCHAR(16)     NOT NULL,
  activity    VARCHAR(64)     NOT NULL,
  error       VARCHAR(1000) CHARACTER SET utf8mb4 NOT NULL,
  attempts    INT UNSIGNED    NOT NULL,
  first_at    TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  last_at     TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  KEY ix_failing_chain (chain, last_at)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;
