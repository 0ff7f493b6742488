package btc_test

import (
	"encoding/binary"
	"runtime"
	"testing"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/txscript"

	"payflow/chain/btc"
)

// BenchmarkWatchSetMatch matches outputs against 1,000,000 watched P2WPKH
// addresses, one in ten output watched: outputs/s and the set's heap.
func BenchmarkWatchSetMatch(b *testing.B) {
	params, _ := btc.Params("simnet")
	const watched = 1_000_000
	script := func(i int) []byte {
		var h [20]byte
		binary.BigEndian.PutUint64(h[:], uint64(i)*0x9e3779b97f4a7c15)
		binary.BigEndian.PutUint64(h[8:], uint64(i))
		a, err := btcutil.NewAddressWitnessPubKeyHash(h[:], params)
		if err != nil {
			b.Fatal(err)
		}
		s, err := txscript.PayToAddrScript(a)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	set := btc.NewWatchSet(params)
	for i := range watched {
		a, err := txscript.ParsePkScript(script(i))
		if err != nil {
			b.Fatal(err)
		}
		addr, err := a.Address(params)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := set.Add(addr.EncodeAddress()); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	outputs := make([][]byte, 4096)
	for i := range outputs {
		if i%10 == 0 {
			outputs[i] = script(i * 97)
		} else {
			outputs[i] = script(watched + i)
		}
	}
	setMiB := (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / (1 << 20)
	b.ResetTimer()
	hits := 0
	for i := 0; i < b.N; i++ {
		if _, ok := set.Match(outputs[i%len(outputs)]); ok {
			hits++
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "outputs/s")
	b.ReportMetric(setMiB, "set-MiB") // after ResetTimer, which drops reported metrics
	if b.N >= len(outputs) && hits == 0 {
		b.Fatal("nothing matched")
	}
}
