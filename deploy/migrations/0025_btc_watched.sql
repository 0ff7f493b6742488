-- The deposit addresses a Bitcoin chain's scanner watches (owned by package
-- chain/btc): one row per (chain, address), from_height the node's head
-- when the watch began, from which a scanner already past it reads back.
CREATE TABLE IF NOT EXISTS btc_watched (
  id           BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  chain        VARCHAR(16)     NOT NULL,
  address      VARCHAR(90)     NOT NULL,
  from_height  BIGINT UNSIGNED NOT NULL,
  created_at   TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  UNIQUE KEY uq_btc_watched (chain, address)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;
