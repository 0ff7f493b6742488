-- Custody: keys move from the wallets table to payflow-signer.
--
-- A reservation names the recipient its money is held for, so the signer can
-- check a transaction against it: wallet, asset, amount and recipient.
-- Reservations made before this column existed have none (NULL); the signer
-- refuses to sign a first attempt for them.
ALTER TABLE reservations ADD COLUMN IF NOT EXISTS recipient VARCHAR(128) NULL AFTER symbol;
-- Who holds a wallet's key: nobody (watch-only), the worker's legacy master
-- key (enc_key, until `payflowctl wallet migrate` hands it to the signer), or
-- the signer (a KMS key, an envelope-encrypted key, or an HD child).
ALTER TABLE wallets ADD COLUMN IF NOT EXISTS key_holder ENUM('none','master','signer') NOT NULL DEFAULT 'none' AFTER label;
-- The BIP44 address index of a deposit address derived from the account
-- xpub (m/44'/60'/0'/0/<hd_index>); NULL for a wallet with its own key.
ALTER TABLE wallets ADD COLUMN IF NOT EXISTS hd_index INT UNSIGNED NULL AFTER key_holder;
ALTER TABLE wallets ADD UNIQUE KEY IF NOT EXISTS uq_wallet_hd (chain, hd_index);
UPDATE wallets SET key_holder = 'master' WHERE enc_key IS NOT NULL AND key_holder = 'none';
