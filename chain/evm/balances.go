package evm

import (
	"context"
	"fmt"
	"math/big"
	"strings"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"payflow/chain"
)

// erc20ABI is the part of ERC20 payflow calls. transfer is declared without a
// return value so USDT-style tokens (which return nothing) work; success is
// judged by the receipt status and the Transfer log (see Inspection).
const erc20ABI = `[
 {"type":"function","name":"transfer","stateMutability":"nonpayable","inputs":[{"name":"to","type":"address"},{"name":"value","type":"uint256"}],"outputs":[]},
 {"type":"function","name":"decimals","stateMutability":"view","inputs":[],"outputs":[{"name":"","type":"uint8"}]},
 {"type":"function","name":"balanceOf","stateMutability":"view","inputs":[{"name":"owner","type":"address"}],"outputs":[{"name":"","type":"uint256"}]},
 {"type":"event","name":"Transfer","anonymous":false,"inputs":[{"name":"from","type":"address","indexed":true},{"name":"to","type":"address","indexed":true},{"name":"value","type":"uint256","indexed":false}]}
]`

// TransferTopic is keccak256("Transfer(address,address,uint256)"): the
// topic of an ERC20 Transfer log.
var TransferTopic = crypto.Keccak256Hash([]byte("Transfer(address,address,uint256)"))

// ERC20 is erc20ABI parsed. The text is a constant: a parse failure is a
// typo that every test of the package shows at once.
var ERC20 = func() abi.ABI {
	parsed, err := abi.JSON(strings.NewReader(erc20ABI))
	if err != nil {
		panic("chain: parsing the ERC20 ABI: " + err.Error())
	}
	return parsed
}()

// Balances reads what wallets hold on chain, and refuses what they cannot pay.
type Balances struct {
	backend Backend
}

// NewBalances wires Balances.
func NewBalances(backend Backend) (*Balances, error) {
	return &Balances{backend: backend}, nil
}

// TokenBalance returns owner's balance of token at block (nil = latest). A
// call that returns less than a word (no token at that address) is an error.
func (b *Balances) TokenBalance(ctx context.Context, token, owner common.Address, block *big.Int) (*big.Int, error) {
	data, err := ERC20.Pack("balanceOf", owner)
	if err != nil {
		return nil, err
	}
	out, err := b.backend.CallContract(ctx, ethereum.CallMsg{To: &token, Data: data}, block)
	if err != nil {
		return nil, fmt.Errorf("calling balanceOf(%s): %w", Lower(owner), err)
	}
	if len(out) < 32 {
		return nil, fmt.Errorf("balanceOf(%s) returned %d bytes; is %s a token?", Lower(owner), len(out), Lower(token))
	}
	return new(big.Int).SetBytes(out[:32]), nil
}

// NativeBalance returns owner's native balance (wei) at block (nil = latest).
func (b *Balances) NativeBalance(ctx context.Context, owner common.Address, block *big.Int) (*big.Int, error) {
	bal, err := b.backend.BalanceAt(ctx, owner, block)
	if err != nil {
		return nil, fmt.Errorf("reading native balance of %s: %w", Lower(owner), err)
	}
	return bal, nil
}

// Balance is TokenBalance of token, or NativeBalance when token is "" (see
// chain.Balances).
func (b *Balances) Balance(ctx context.Context, token, owner string, block *big.Int) (*big.Int, error) {
	if token == "" {
		return b.NativeBalance(ctx, common.HexToAddress(owner), block)
	}
	return b.TokenBalance(ctx, common.HexToAddress(token), common.HexToAddress(owner), block)
}

// RequireToken fails with ErrInsufficientToken when from holds fewer than
// units of token at the latest block.
func (b *Balances) RequireToken(ctx context.Context, token, from common.Address, units *big.Int) error {
	bal, err := b.TokenBalance(ctx, token, from, nil)
	if err != nil {
		return err
	}
	if bal.Cmp(units) < 0 {
		return fmt.Errorf("%s holds %s units, needs %s: %w", Lower(from), bal, units, chain.ErrInsufficientToken)
	}
	return nil
}

// RequireNative fails with ErrInsufficientGas when from holds less native
// coin than need at the latest block; what names the cost in the message.
func (b *Balances) RequireNative(ctx context.Context, from common.Address, need *big.Int, what string) error {
	eth, err := b.NativeBalance(ctx, from, nil)
	if err != nil {
		return err
	}
	if eth.Cmp(need) < 0 {
		return fmt.Errorf("%s has %s wei, %s may cost up to %s: %w", Lower(from), eth, what, need, chain.ErrInsufficientGas)
	}
	return nil
}
