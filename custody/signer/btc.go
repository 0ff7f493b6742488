package signer

import (
	"context"
	"errors"
	"fmt"

	"payflow/chain/btc"
	"payflow/custody/hd"
	"payflow/custody/signerapi"
)

// BTCAccount derives the signer's BIP84 Bitcoin account on network from its
// mnemonic (m/84'/coin'/0': coin 0 on mainnet, 1 on the test networks, 115
// on simnet) and returns its xpub, in the network's serialisation. Nothing
// is stored or signed: the same mnemonic always gives the same account. An
// unknown network is a bad request.
func (s *Signer) BTCAccount(ctx context.Context, network string) (signerapi.BTCAccount, error) {
	params, err := btc.Params(network)
	if errors.Is(err, btc.ErrNetwork) {
		return signerapi.BTCAccount{}, &badRequest{msg: err.Error()}
	}
	if err != nil {
		return signerapi.BTCAccount{}, err
	}
	path := hd.Path(btc.AccountPath(params))
	k, err := s.keys.child(ctx, path)
	if err != nil {
		return signerapi.BTCAccount{}, fmt.Errorf("deriving the Bitcoin account: %w", err)
	}
	defer k.Zero()
	xpub, err := k.XPubWithVersion(params.HDPublicKeyID)
	if err != nil {
		return signerapi.BTCAccount{}, err
	}
	return signerapi.BTCAccount{Network: network, Path: path.String(), XPub: xpub}, nil
}
