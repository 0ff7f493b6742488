// Package hd derives keys and Ethereum addresses the BIP39/BIP32/BIP44 way:
// a mnemonic gives a seed, the seed a master key, the master key the
// account key m/44'/60'/0' and its deposit keys m/44'/60'/0'/0/i. From the
// account's extended public key (xpub) alone, deposit addresses are
// derived with no private key at all.
//
// The curve arithmetic of BIP32 is btcd's hdkeychain; this package is the
// payflow layer over it: mnemonics, paths, Ethereum addresses, and keeping
// xprv strings out of fmt's reach.
package hd

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	_ "embed"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/text/unicode/norm"
)

//go:embed english.txt
var englishFile string

// english is BIP39's English wordlist, in order; wordIndex maps back.
var (
	english   = strings.Fields(englishFile)
	wordIndex = func() map[string]int {
		m := make(map[string]int, len(english))
		for i, w := range english {
			m[w] = i
		}
		return m
	}()
)

var (
	// ErrMnemonicLength: the mnemonic is not 12, 15, 18, 21 or 24 words.
	ErrMnemonicLength = errors.New("a mnemonic has 12, 15, 18, 21 or 24 words")
	// ErrMnemonicWord: a word is not in BIP39's English wordlist.
	ErrMnemonicWord = errors.New("a word of the mnemonic is not in the BIP39 English wordlist")
	// ErrMnemonicChecksum: the words are listed but their checksum is wrong
	// (a word mistyped as another listed word, or words swapped).
	ErrMnemonicChecksum = errors.New("the mnemonic's checksum does not match")
	// ErrEntropyLength: entropy is not 16, 20, 24, 28 or 32 bytes.
	ErrEntropyLength = errors.New("mnemonic entropy is 16, 20, 24, 28 or 32 bytes")
)

// NewMnemonic draws bits of entropy (128, 160, 192, 224 or 256) from
// crypto/rand and returns its mnemonic: 12 to 24 words. Use 256.
func NewMnemonic(bits int) (string, error) {
	if bits%32 != 0 || bits < 128 || bits > 256 {
		return "", ErrEntropyLength
	}
	entropy := make([]byte, bits/8)
	defer clear(entropy)
	if _, err := rand.Read(entropy); err != nil {
		return "", fmt.Errorf("drawing mnemonic entropy: %w", err)
	}
	return EntropyToMnemonic(entropy)
}

// EntropyToMnemonic encodes entropy (16 to 32 bytes, a multiple of 4) as
// BIP39 words: the entropy and the first len/4 bits of its SHA-256, 11
// bits a word.
func EntropyToMnemonic(entropy []byte) (string, error) {
	n := len(entropy)
	if n%4 != 0 || n < 16 || n > 32 {
		return "", ErrEntropyLength
	}
	sum := sha256.Sum256(entropy)
	bits := n*8 + n/4
	words := make([]string, bits/11)
	for w := range words {
		idx := 0
		for b := w * 11; b < (w+1)*11; b++ {
			idx = idx<<1 | int(bitAt(entropy, sum[:], b))
		}
		words[w] = english[idx]
	}
	return strings.Join(words, " "), nil
}

// bitAt is bit b of entropy followed by the checksum bytes.
func bitAt(entropy, checksum []byte, b int) byte {
	src := entropy
	if b >= len(entropy)*8 {
		src, b = checksum, b-len(entropy)*8
	}
	return src[b/8] >> (7 - b%8) & 1
}

// MnemonicToEntropy decodes a mnemonic and checks its checksum. Words are
// separated by any white space; they must be lower case.
func MnemonicToEntropy(mnemonic string) ([]byte, error) {
	words := strings.Fields(mnemonic)
	switch len(words) {
	case 12, 15, 18, 21, 24:
	default:
		return nil, ErrMnemonicLength
	}
	bits := len(words) * 11
	csBits := bits / 33
	n := (bits - csBits) / 8
	buf := make([]byte, (bits+7)/8)
	for w, word := range words {
		idx, ok := wordIndex[word]
		if !ok {
			// The word itself may be a secret's part: not in the error.
			return nil, fmt.Errorf("word %d: %w", w+1, ErrMnemonicWord)
		}
		for i := 0; i < 11; i++ {
			if idx>>(10-i)&1 == 1 {
				b := w*11 + i
				buf[b/8] |= 1 << (7 - b%8)
			}
		}
	}
	entropy := buf[:n:n]
	sum := sha256.Sum256(entropy)
	for i := 0; i < csBits; i++ {
		b := n*8 + i
		if buf[b/8]>>(7-b%8)&1 != sum[i/8]>>(7-i%8)&1 {
			clear(buf)
			return nil, ErrMnemonicChecksum
		}
	}
	clear(buf[n:])
	return entropy, nil
}

// ValidateMnemonic checks a mnemonic's length, words and checksum.
func ValidateMnemonic(mnemonic string) error {
	entropy, err := MnemonicToEntropy(mnemonic)
	clear(entropy)
	return err
}

// Seed turns a valid mnemonic and a passphrase (often empty) into the
// 64-byte BIP39 seed: PBKDF2-HMAC-SHA512, 2048 rounds, salt "mnemonic" and
// the passphrase, both NFKD-normalised. It refuses a mnemonic that does not
// validate (BIP39 itself would derive a seed from any string, which hides
// a mistyped word until the funds are missing). The caller should clear the
// seed once used.
func Seed(mnemonic, passphrase string) ([]byte, error) {
	if err := ValidateMnemonic(mnemonic); err != nil {
		return nil, err
	}
	m := strings.Join(strings.Fields(norm.NFKD.String(mnemonic)), " ")
	seed, err := pbkdf2.Key(sha512.New, m, []byte("mnemonic"+norm.NFKD.String(passphrase)), 2048, 64)
	if err != nil {
		return nil, fmt.Errorf("deriving the seed: %w", err)
	}
	return seed, nil
}
