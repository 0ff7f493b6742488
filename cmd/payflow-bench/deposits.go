package main

import (
	"encoding/binary"
	"math/big"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"payflow/chain/evm"
	"payflow/chain/evm/watch"
)

type depositResult struct {
	Watched, Logs, Matched int
	LogsPerSec, RSSMB      float64
}

func benchAddr(i uint64) common.Address {
	var a common.Address
	binary.BigEndian.PutUint64(a[4:], i*0x9E3779B97F4A7C15+1)
	binary.BigEndian.PutUint64(a[12:], i)
	return a
}

// benchDeposits replays blocks full of Transfer logs (500 per block, 1 in 50
// to a watched address) through the listener's matcher against n watched
// addresses, as eth_getLogs returns them.
func benchDeposits(n int) depositResult {
	w := watch.NewWatchSet(n)
	for i := 0; i < n; i++ {
		w.Add(benchAddr(uint64(i)))
	}
	token := common.HexToAddress("0xdAC17F958D2ee523a2206206994597C13D831ec7")
	const blocks, perBlock = 400, 500
	logs := make([]types.Log, 0, blocks*perBlock)
	val := common.LeftPadBytes(big.NewInt(1_000_000).Bytes(), 32)
	for b := 0; b < blocks; b++ {
		for j := 0; j < perBlock; j++ {
			k := uint64(b*perBlock + j)
			to := benchAddr(uint64(n) + k) // unwatched
			if k%50 == 0 {
				to = benchAddr(k * 7919 % uint64(n))
			}
			logs = append(logs, types.Log{Address: token, BlockNumber: uint64(b), Index: uint(j),
				TxHash: common.BigToHash(new(big.Int).SetUint64(k + 1)),
				Topics: []common.Hash{evm.TransferTopic, common.BytesToHash(benchAddr(k).Bytes()), common.BytesToHash(to.Bytes())},
				Data:   val})
		}
	}
	match := func(to common.Address, _ uint64) bool { return w.Has(to) }
	matched := 0
	start := time.Now()
	rounds := 0
	for time.Since(start) < 3*time.Second || rounds < 3 {
		matched = len(watch.MatchTransfers(logs, match))
		rounds++
	}
	el := time.Since(start)
	runtime.GC()
	return depositResult{Watched: w.Len(), Logs: len(logs), Matched: matched,
		LogsPerSec: float64(rounds*len(logs)) / el.Seconds(), RSSMB: rssMB()}
}

func rssMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return -1
}

func numCPU() int { return runtime.NumCPU() }
