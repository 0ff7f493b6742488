-- Bitcoin addresses are longer than an EVM address's 42 characters: a
-- native segwit address on regtest is 44 (bcrt1q...), a P2WSH or taproot
-- one up to 64, and bech32 allows 90. The address columns the ledger uses
-- for a Bitcoin wallet and its deposits widen to VARCHAR(90); EVM addresses
-- keep their 42 characters in them. (The signer's and the EVM store's
-- tables keep CHAR(42): Bitcoin signing has tables of its own to come.)
ALTER TABLE wallets MODIFY address VARCHAR(90) NOT NULL;
ALTER TABLE balances MODIFY address VARCHAR(90) NOT NULL;
ALTER TABLE journal MODIFY address VARCHAR(90) NOT NULL;
ALTER TABLE reservations MODIFY address VARCHAR(90) NOT NULL;
ALTER TABLE watched_addresses MODIFY address VARCHAR(90) NOT NULL;
ALTER TABLE deposits MODIFY address VARCHAR(90) NOT NULL, MODIFY from_address VARCHAR(90) NOT NULL;
ALTER TABLE reconciliations MODIFY address VARCHAR(90) NOT NULL;
