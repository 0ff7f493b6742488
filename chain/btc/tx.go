package btc

// DustLimit is the smallest P2WPKH output payflow creates, in satoshis
// (Bitcoin Core's dust threshold for P2WPKH at the default 3 sat/vB dust
// relay fee is 294; 546 is the common, safe bound). Smaller change is left
// to the fee.
const DustLimit = 546

// P2WPKHVSize is the virtual size, in vbytes, of a version 2 transaction
// spending inputs P2WPKH outputs to outputs P2WPKH outputs, rounded up
// (each signature counted at its largest, 72 bytes): what fees are computed
// on.
func P2WPKHVSize(inputs, outputs int) int {
	// Base: version 4, input and output counts 1+1 (below 253), lock time
	// 4; each input 41 (outpoint 36, empty script 1, sequence 4); each
	// output 31 (value 8, script length 1, script 22).
	base := 10 + 41*inputs + 31*outputs
	// Witness: marker and flag 2; per input, item count 1, signature 1+72,
	// public key 1+33.
	witness := 2 + 108*inputs
	return (base*4 + witness + 3) / 4
}
