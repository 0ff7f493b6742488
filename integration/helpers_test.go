package integration

import (
	"strings"

	"github.com/ethereum/go-ethereum/common"
)

func stacktestLower(a common.Address) string { return strings.ToLower(a.Hex()) }

func stacktestLowerHash(h common.Hash) string { return strings.ToLower(h.Hex()) }
