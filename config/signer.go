package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// EnvKMSEndpoint overrides custody.kms.endpoint for payflow-signer (the dev
// stack starts the signer before config.json names its local-kms).
const EnvKMSEndpoint = "PAYFLOW_KMS_ENDPOINT"

// LoadSigner reads path for payflow-signer: the chains it signs for (as
// Load resolves them; the Bitcoin chains without their node's
// credentials), signer and custody, with the environment's overrides
// (PAYFLOW_MYSQL_DSN, PAYFLOW_SIGNER_SOCKET, PAYFLOW_KMS_ENDPOINT, ...). It validates the chains
// and the database, not the RabbitMQ and Temporal sections the signer never
// reads (their secrets are not in its environment). A missing file, or one
// that names no chain (a dev stack before `payflowctl devstack` wrote its
// chains), gives a Config with no chains: the signer then refuses to sign
// for any chain until it is restarted with them.
func LoadSigner(path string) (Config, error) {
	cfg := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return Config{}, fmt.Errorf("reading config %s: %w", path, err)
		default:
			if err := json.Unmarshal(b, &cfg); err != nil {
				return Config{}, fmt.Errorf("parsing config %s: %w", path, err)
			}
		}
	}
	if err := cfg.applyEnv(os.LookupEnv); err != nil {
		return Config{}, err
	}
	if v := os.Getenv(EnvKMSEndpoint); v != "" {
		cfg.Custody.KMS.Endpoint = v
	}
	// The seed shape names its one chain in eth_config; without a chain id
	// it names none.
	if len(cfg.Chains) > 0 || cfg.ETH.ChainID > 0 {
		cfg.ResolveChains()
	} else {
		cfg.Chains = map[string]ChainConfig{}
	}
	// The Bitcoin chains: their network, coin and fee rates; not their
	// node's credentials, which the signer never uses.
	if err := cfg.resolveBTCChains(os.LookupEnv, false); err != nil {
		return Config{}, err
	}
	errs := cfg.validateBTCChains(false)
	if cfg.ETH.DB.DSN == "" && (cfg.ETH.DB.User == "" || cfg.ETH.DB.Host == "" || cfg.ETH.DB.Database == "") {
		errs = append(errs, fmt.Errorf("%w: eth_config.dbConfig needs user, host and database (or %s)", ErrInvalid, EnvMySQLDSN))
	}
	ids := map[int64]string{}
	for _, name := range cfg.ChainNames() {
		ch := cfg.Chains[name]
		errs = append(errs, cfg.validateChain(name, ch)...)
		if other, dup := ids[ch.ChainID]; dup && ch.ChainID > 0 {
			errs = append(errs, fmt.Errorf("%w: chains.%s.chainId %d is chains.%s's too: every chain needs its own id", ErrInvalid, name, ch.ChainID, other))
		}
		ids[ch.ChainID] = name
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return cfg, nil
}
