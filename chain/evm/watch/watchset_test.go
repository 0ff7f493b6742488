package watch

import (
	"encoding/binary"
	"runtime"
	"testing"

	"github.com/ethereum/go-ethereum/common"
)

func addrN(i uint64) common.Address {
	var a common.Address
	binary.BigEndian.PutUint64(a[12:], i*0x9E3779B97F4A7C15)
	a[0] = byte(i)
	return a
}

func TestWatchSet(t *testing.T) {
	w := NewWatchSet(0)
	if n := w.Add(addrN(1), addrN(2), addrN(1)); n != 2 {
		t.Fatalf("added %d new, want 2", n)
	}
	if !w.Has(addrN(2)) || w.Has(addrN(3)) || w.Len() != 2 {
		t.Fatal("membership wrong")
	}
	// Hex case is a rendering: the same address in any case matches.
	a := common.HexToAddress("0xAbCdEf0123456789aBcDeF0123456789AbCdEf01")
	w.Add(a)
	if !w.Has(common.HexToAddress("0xabcdef0123456789abcdef0123456789abcdef01")) {
		t.Fatal("case-sensitive match")
	}
}

// BenchmarkWatchSetMatch1M: 1,000,000 watched addresses; each op matches one
// Transfer log's recipient (1 in 10 is watched). Reports logs/s and the heap
// the set holds (≥ 50,000 logs/s, ≤ 300 MB).
func BenchmarkWatchSetMatch1M(b *testing.B) {
	const n = 1_000_000
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	w := NewWatchSet(n)
	for i := uint64(0); i < n; i++ {
		w.Add(addrN(i))
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	logs := make([]common.Address, 1<<16)
	for i := range logs {
		if i%10 == 0 {
			logs[i] = addrN(uint64(i * 7 % n))
		} else {
			logs[i] = addrN(uint64(n + i))
		}
	}
	b.ResetTimer()
	hits := 0
	for i := 0; i < b.N; i++ {
		if w.Has(logs[i&(len(logs)-1)]) {
			hits++
		}
	}
	b.StopTimer()
	if hits == 0 {
		b.Fatal("no hits")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logs/s")
	b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/(1<<20), "MB-set")
}
