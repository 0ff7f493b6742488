package hd_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/stretchr/testify/require"

	"payflow/custody/hd"
)

// TestWordlistIsBIP39English pins the embedded wordlist to the published
// file's SHA-256.
func TestWordlistIsBIP39English(t *testing.T) {
	b, err := os.ReadFile("english.txt")
	require.NoError(t, err)
	sum := sha256.Sum256(b)
	require.Equal(t, "2f5eed53a4727b4bf8880d8f3f199efc90e58503646d9ff8eff3a2ed3b24dbda", hex.EncodeToString(sum[:]))
}

// bip39Vectors are Trezor's (python-mnemonic vectors.json), passphrase
// "TREZOR": entropy, mnemonic, seed and the seed's master xprv.
var bip39Vectors = []struct{ entropy, mnemonic, seed, xprv string }{
	{
		entropy:  "00000000000000000000000000000000",
		mnemonic: "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
		seed:     "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04",
		xprv:     "xprv9s21ZrQH143K3h3fDYiay8mocZ3afhfULfb5GX8kCBdno77K4HiA15Tg23wpbeF1pLfs1c5SPmYHrEpTuuRhxMwvKDwqdKiGJS9XFKzUsAF",
	},
	{
		entropy:  "ffffffffffffffffffffffffffffffff",
		mnemonic: "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo wrong",
		seed:     "ac27495480225222079d7be181583751e86f571027b0497b5b5d11218e0a8a13332572917f0f8e5a589620c6f15b11c61dee327651a14c34e18231052e48c069",
		xprv:     "xprv9s21ZrQH143K2V4oox4M8Zmhi2Fjx5XK4Lf7GKRvPSgydU3mjZuKGCTg7UPiBUD7ydVPvSLtg9hjp7MQTYsW67rZHAXeccqYqrsx8LcXnyd",
	},
	{
		entropy:  "ffffffffffffffffffffffffffffffffffffffffffffffff",
		mnemonic: "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo when",
		seed:     "0cd6e5d827bb62eb8fc1e262254223817fd068a74b5b449cc2f667c3f1f985a76379b43348d952e2265b4cd129090758b3e3c2c49103b5051aac2eaeb890a528",
		xprv:     "xprv9s21ZrQH143K36Ao5jHRVhFGDbLP6FCx8BEEmpru77ef3bmA928BxsqvVM27WnvvyfWywiFN8K6yToqMaGYfzS6Db1EHAXT5TuyCLBXUfdm",
	},
	{
		entropy:  "0000000000000000000000000000000000000000000000000000000000000000",
		mnemonic: "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon art",
		seed:     "bda85446c68413707090a52022edd26a1c9462295029f2e60cd7c4f2bbd3097170af7a4d73245cafa9c3cca8d561a7c3de6f5d4a10be8ed2a5e608d68f92fcc8",
		xprv:     "xprv9s21ZrQH143K32qBagUJAMU2LsHg3ka7jqMcV98Y7gVeVyNStwYS3U7yVVoDZ4btbRNf4h6ibWpY22iRmXq35qgLs79f312g2kj5539ebPM",
	},
	{
		entropy:  "9e885d952ad362caeb4efe34a8e91bd2",
		mnemonic: "ozone drill grab fiber curtain grace pudding thank cruise elder eight picnic",
		seed:     "274ddc525802f7c828d8ef7ddbcdc5304e87ac3535913611fbbfa986d0c9e5476c91689f9c8a54fd55bd38606aa6a8595ad213d4c9c9f9aca3fb217069a41028",
		xprv:     "xprv9s21ZrQH143K2oZ9stBYpoaZ2ktHj7jLz7iMqpgg1En8kKFTXJHsjxry1JbKH19YrDTicVwKPehFKTbmaxgVEc5TpHdS1aYhB2s9aFJBeJH",
	},
	{
		entropy:  "9f6a2878b2520799a44ef18bc7df394e7061a224d2c33cd015b157d746869863",
		mnemonic: "panda eyebrow bullet gorilla call smoke muffin taste mesh discover soft ostrich alcohol speed nation flash devote level hobby quick inner drive ghost inside",
		seed:     "72be8e052fc4919d2adf28d5306b5474b0069df35b02303de8c1729c9538dbb6fc2d731d5f832193cd9fb6aeecbc469594a70e3dd50811b5067f3b88b28c3e8d",
		xprv:     "xprv9s21ZrQH143K2WNnKmssvZYM96VAr47iHUQUTUyUXH3sAGNjhJANddnhw3i3y3pBbRAVk5M5qUGFr4rHbEWwXgX4qrvrceifCYQJbbFDems",
	},
	{
		entropy:  "f585c11aec520db57dd353c69554b21a89b20fb0650966fa0a9d6f74fd989d8f",
		mnemonic: "void come effort suffer camp survey warrior heavy shoot primary clutch crush open amazing screen patrol group space point ten exist slush involve unfold",
		seed:     "01f5bced59dec48e362f2c45b5de68b9fd6c92c6634f44d6d40aab69056506f0e35524a518034ddc1192e1dacd32c1ed3eaa3c3b131c88ed8e7e54c49a5d0998",
		xprv:     "xprv9s21ZrQH143K39rnQJknpH1WEPFJrzmAqqasiDcVrNuk926oizzJDDQkdiTvNPr2FYDYzWgiMiC63YmfPAa2oPyNB23r2g7d1yiK6WpqaQS",
	},
}

func TestBIP39Vectors(t *testing.T) {
	for _, v := range bip39Vectors {
		entropy, _ := hex.DecodeString(v.entropy)
		m, err := hd.EntropyToMnemonic(entropy)
		require.NoError(t, err)
		require.Equal(t, v.mnemonic, m)

		back, err := hd.MnemonicToEntropy(v.mnemonic)
		require.NoError(t, err)
		require.Equal(t, v.entropy, hex.EncodeToString(back))

		seed, err := hd.Seed(v.mnemonic, "TREZOR")
		require.NoError(t, err)
		require.Equal(t, v.seed, hex.EncodeToString(seed))

		master, err := hd.NewMasterKey(seed)
		require.NoError(t, err)
		xprv, err := master.XPrv()
		require.NoError(t, err)
		require.Equal(t, v.xprv, xprv)
	}
}

func TestMnemonicValidation(t *testing.T) {
	valid := bip39Vectors[0].mnemonic
	require.NoError(t, hd.ValidateMnemonic(valid))
	require.NoError(t, hd.ValidateMnemonic("  "+strings.ReplaceAll(valid, " ", "\n")+" "), "any white space between words")

	words := strings.Fields(valid)
	swapped := append([]string{}, words...)
	swapped[11] = "abandon" // a listed word, the checksum no longer matches
	require.ErrorIs(t, hd.ValidateMnemonic(strings.Join(swapped, " ")), hd.ErrMnemonicChecksum)
	unknown := append([]string{}, words...)
	unknown[3] = "abandonn"
	err := hd.ValidateMnemonic(strings.Join(unknown, " "))
	require.ErrorIs(t, err, hd.ErrMnemonicWord)
	require.NotContains(t, err.Error(), "abandonn", "errors do not quote the mnemonic")
	require.ErrorIs(t, hd.ValidateMnemonic(strings.Join(words[:11], " ")), hd.ErrMnemonicLength)
	require.ErrorIs(t, hd.ValidateMnemonic(strings.ToUpper(valid)), hd.ErrMnemonicWord)

	_, err = hd.Seed(strings.Join(swapped, " "), "")
	require.ErrorIs(t, err, hd.ErrMnemonicChecksum, "no seed from a mnemonic that does not validate")
	_, err = hd.EntropyToMnemonic(make([]byte, 15))
	require.ErrorIs(t, err, hd.ErrEntropyLength)
}

func TestNewMnemonic(t *testing.T) {
	for bits, words := range map[int]int{128: 12, 160: 15, 192: 18, 224: 21, 256: 24} {
		m, err := hd.NewMnemonic(bits)
		require.NoError(t, err)
		require.Len(t, strings.Fields(m), words)
		require.NoError(t, hd.ValidateMnemonic(m))
	}
	a, _ := hd.NewMnemonic(256)
	b, _ := hd.NewMnemonic(256)
	require.NotEqual(t, a, b)
	_, err := hd.NewMnemonic(100)
	require.ErrorIs(t, err, hd.ErrEntropyLength)
}

type bip32Step struct{ path, xpub, xprv string }

// bip32Vectors are BIP32's test vectors 1, 2 and 3 (3: a private key with
// a leading zero byte).
var bip32Vectors = []struct {
	seed  string
	steps []bip32Step
}{
	{"000102030405060708090a0b0c0d0e0f", []bip32Step{
		{"m", "xpub661MyMwAqRbcFtXgS5sYJABqqG9YLmC4Q1Rdap9gSE8NqtwybGhePY2gZ29ESFjqJoCu1Rupje8YtGqsefD265TMg7usUDFdp6W1EGMcet8", "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi"},
		{"m/0'", "xpub68Gmy5EdvgibQVfPdqkBBCHxA5htiqg55crXYuXoQRKfDBFA1WEjWgP6LHhwBZeNK1VTsfTFUHCdrfp1bgwQ9xv5ski8PX9rL2dZXvgGDnw", "xprv9uHRZZhk6KAJC1avXpDAp4MDc3sQKNxDiPvvkX8Br5ngLNv1TxvUxt4cV1rGL5hj6KCesnDYUhd7oWgT11eZG7XnxHrnYeSvkzY7d2bhkJ7"},
		{"m/0'/1", "xpub6ASuArnXKPbfEwhqN6e3mwBcDTgzisQN1wXN9BJcM47sSikHjJf3UFHKkNAWbWMiGj7Wf5uMash7SyYq527Hqck2AxYysAA7xmALppuCkwQ", "xprv9wTYmMFdV23N2TdNG573QoEsfRrWKQgWeibmLntzniatZvR9BmLnvSxqu53Kw1UmYPxLgboyZQaXwTCg8MSY3H2EU4pWcQDnRnrVA1xe8fs"},
		{"m/0'/1/2'", "xpub6D4BDPcP2GT577Vvch3R8wDkScZWzQzMMUm3PWbmWvVJrZwQY4VUNgqFJPMM3No2dFDFGTsxxpG5uJh7n7epu4trkrX7x7DogT5Uv6fcLW5", "xprv9z4pot5VBttmtdRTWfWQmoH1taj2axGVzFqSb8C9xaxKymcFzXBDptWmT7FwuEzG3ryjH4ktypQSAewRiNMjANTtpgP4mLTj34bhnZX7UiM"},
		{"m/0'/1/2'/2", "xpub6FHa3pjLCk84BayeJxFW2SP4XRrFd1JYnxeLeU8EqN3vDfZmbqBqaGJAyiLjTAwm6ZLRQUMv1ZACTj37sR62cfN7fe5JnJ7dh8zL4fiyLHV", "xprvA2JDeKCSNNZky6uBCviVfJSKyQ1mDYahRjijr5idH2WwLsEd4Hsb2Tyh8RfQMuPh7f7RtyzTtdrbdqqsunu5Mm3wDvUAKRHSC34sJ7in334"},
		{"m/0'/1/2'/2/1000000000", "xpub6H1LXWLaKsWFhvm6RVpEL9P4KfRZSW7abD2ttkWP3SSQvnyA8FSVqNTEcYFgJS2UaFcxupHiYkro49S8yGasTvXEYBVPamhGW6cFJodrTHy", "xprvA41z7zogVVwxVSgdKUHDy1SKmdb533PjDz7J6N6mV6uS3ze1ai8FHa8kmHScGpWmj4WggLyQjgPie1rFSruoUihUZREPSL39UNdE3BBDu76"},
	}},
	{"fffcf9f6f3f0edeae7e4e1dedbd8d5d2cfccc9c6c3c0bdbab7b4b1aeaba8a5a29f9c999693908d8a8784817e7b7875726f6c696663605d5a5754514e4b484542", []bip32Step{
		{"m", "xpub661MyMwAqRbcFW31YEwpkMuc5THy2PSt5bDMsktWQcFF8syAmRUapSCGu8ED9W6oDMSgv6Zz8idoc4a6mr8BDzTJY47LJhkJ8UB7WEGuduB", "xprv9s21ZrQH143K31xYSDQpPDxsXRTUcvj2iNHm5NUtrGiGG5e2DtALGdso3pGz6ssrdK4PFmM8NSpSBHNqPqm55Qn3LqFtT2emdEXVYsCzC2U"},
		{"m/0", "xpub69H7F5d8KSRgmmdJg2KhpAK8SR3DjMwAdkxj3ZuxV27CprR9LgpeyGmXUbC6wb7ERfvrnKZjXoUmmDznezpbZb7ap6r1D3tgFxHmwMkQTPH", "xprv9vHkqa6EV4sPZHYqZznhT2NPtPCjKuDKGY38FBWLvgaDx45zo9WQRUT3dKYnjwih2yJD9mkrocEZXo1ex8G81dwSM1fwqWpWkeS3v86pgKt"},
		{"m/0/2147483647'", "xpub6ASAVgeehLbnwdqV6UKMHVzgqAG8Gr6riv3Fxxpj8ksbH9ebxaEyBLZ85ySDhKiLDBrQSARLq1uNRts8RuJiHjaDMBU4Zn9h8LZNnBC5y4a", "xprv9wSp6B7kry3Vj9m1zSnLvN3xH8RdsPP1Mh7fAaR7aRLcQMKTR2vidYEeEg2mUCTAwCd6vnxVrcjfy2kRgVsFawNzmjuHc2YmYRmagcEPdU9"},
		{"m/0/2147483647'/1", "xpub6DF8uhdarytz3FWdA8TvFSvvAh8dP3283MY7p2V4SeE2wyWmG5mg5EwVvmdMVCQcoNJxGoWaU9DCWh89LojfZ537wTfunKau47EL2dhHKon", "xprv9zFnWC6h2cLgpmSA46vutJzBcfJ8yaJGg8cX1e5StJh45BBciYTRXSd25UEPVuesF9yog62tGAQtHjXajPPdbRCHuWS6T8XA2ECKADdw4Ef"},
		{"m/0/2147483647'/1/2147483646'", "xpub6ERApfZwUNrhLCkDtcHTcxd75RbzS1ed54G1LkBUHQVHQKqhMkhgbmJbZRkrgZw4koxb5JaHWkY4ALHY2grBGRjaDMzQLcgJvLJuZZvRcEL", "xprvA1RpRA33e1JQ7ifknakTFpgNXPmW2YvmhqLQYMmrj4xJXXWYpDPS3xz7iAxn8L39njGVyuoseXzU6rcxFLJ8HFsTjSyQbLYnMpCqE2VbFWc"},
		{"m/0/2147483647'/1/2147483646'/2", "xpub6FnCn6nSzZAw5Tw7cgR9bi15UV96gLZhjDstkXXxvCLsUXBGXPdSnLFbdpq8p9HmGsApME5hQTZ3emM2rnY5agb9rXpVGyy3bdW6EEgAtqt", "xprvA2nrNbFZABcdryreWet9Ea4LvTJcGsqrMzxHx98MMrotbir7yrKCEXw7nadnHM8Dq38EGfSh6dqA9QWTyefMLEcBYJUuekgW4BYPJcr9E7j"},
	}},
	{"4b381541583be4423346c643850da4b320e46a87ae3d2a4e6da11eba819cd4acba45d239319ac14f863b8d5ab5a0d0c64d2e8a1e7d1457df2e5a3c51c73235be", []bip32Step{
		{"m", "xpub661MyMwAqRbcEZVB4dScxMAdx6d4nFc9nvyvH3v4gJL378CSRZiYmhRoP7mBy6gSPSCYk6SzXPTf3ND1cZAceL7SfJ1Z3GC8vBgp2epUt13", "xprv9s21ZrQH143K25QhxbucbDDuQ4naNntJRi4KUfWT7xo4EKsHt2QJDu7KXp1A3u7Bi1j8ph3EGsZ9Xvz9dGuVrtHHs7pXeTzjuxBrCmmhgC6"},
		{"m/0'", "xpub68NZiKmJWnxxS6aaHmn81bvJeTESw724CRDs6HbuccFQN9Ku14VQrADWgqbhhTHBaohPX4CjNLf9fq9MYo6oDaPPLPxSb7gwQN3ih19Zm4Y", "xprv9uPDJpEQgRQfDcW7BkF7eTya6RPxXeJCqCJGHuCJ4GiRVLzkTXBAJMu2qaMWPrS7AANYqdq6vcBcBUdJCVVFceUvJFjaPdGZ2y9WACViL4L"},
	}},
}

func TestBIP32Vectors(t *testing.T) {
	for _, v := range bip32Vectors {
		seed, _ := hex.DecodeString(v.seed)
		master, err := hd.NewMasterKey(seed)
		require.NoError(t, err)
		for _, s := range v.steps {
			p, err := hd.ParsePath(s.path)
			require.NoError(t, err)
			require.Equal(t, s.path, p.String())
			k, err := master.Derive(p)
			require.NoError(t, err, s.path)
			xprv, err := k.XPrv()
			require.NoError(t, err)
			require.Equal(t, s.xprv, xprv, s.path)
			require.Equal(t, s.xpub, k.XPub(), s.path)

			// The serialisations parse back to the same key.
			back, err := hd.ParseKey(s.xprv)
			require.NoError(t, err)
			require.Equal(t, s.xpub, back.XPub())
			pub, err := hd.ParseKey(s.xpub)
			require.NoError(t, err)
			require.False(t, pub.IsPrivate())
			_, err = pub.XPrv()
			require.Error(t, err)
		}
		// Public derivation from each xpub agrees with the private one on
		// the normal levels that follow it.
		for i := 0; i+1 < len(v.steps); i++ {
			next, _ := hd.ParsePath(v.steps[i+1].path)
			last := next[len(next)-1]
			if last >= hd.Hardened {
				continue
			}
			pub, err := hd.ParseKey(v.steps[i].xpub)
			require.NoError(t, err)
			child, err := pub.Derive(hd.Path{last})
			require.NoError(t, err)
			require.Equal(t, v.steps[i+1].xpub, child.XPub(), v.steps[i+1].path)
		}
	}
}

func TestParsePathAgreesWithGoEthereum(t *testing.T) {
	for _, s := range []string{"m/44'/60'/0'/0/3", "m/44'/60'/0'/0/0", "m/44'/60'/0'", "m/44h/60h/7H/1/2147483647", "m/0", "m"} {
		ours, err := hd.ParsePath(s)
		require.NoError(t, err, s)
		theirs, err := accounts.ParseDerivationPath(s)
		if s == "m" {
			// go-ethereum refuses the empty path; the master key is ours.
			require.Error(t, err)
			require.Empty(t, ours)
			continue
		}
		if strings.ContainsAny(s, "hH") {
			// go-ethereum knows only ' for hardened.
			theirs, err = accounts.ParseDerivationPath(strings.NewReplacer("h", "'", "H", "'").Replace(s))
		}
		require.NoError(t, err, s)
		require.Equal(t, []uint32(theirs), []uint32(ours), s)
	}
	// go-ethereum's root is the account's external chain, its base path the
	// first address on it.
	require.Equal(t, append(append([]uint32{}, hd.AccountPath...), 0), []uint32(accounts.DefaultRootDerivationPath))
	require.Equal(t, []uint32(hd.DepositPath(0)), []uint32(accounts.DefaultBaseDerivationPath))
	next := accounts.DefaultIterator(accounts.DefaultBaseDerivationPath)
	for i := uint32(0); i < 5; i++ {
		require.Equal(t, []uint32(next()), []uint32(hd.DepositPath(i)))
		require.Equal(t, gethPathString(i), hd.DepositPath(i).String())
	}
	for _, bad := range []string{"", "44'/60'", "m/", "m//1", "m/-1", "m/+1", "m/01", "m/2147483648", "m/1''", "m/ 1", "M/1", "m/1x"} {
		_, err := hd.ParsePath(bad)
		require.ErrorIs(t, err, hd.ErrPath, "%q", bad)
	}
}

func gethPathString(i uint32) string {
	return accounts.DerivationPath(hd.DepositPath(i)).String()
}

// TestAccountXPubDerivesThePrivateKeysAddresses: the address the worker
// derives from the account xpub is the one whose private key the signer
// derives from the mnemonic.
func TestAccountXPubDerivesThePrivateKeysAddresses(t *testing.T) {
	seed, err := hd.Seed(bip39Vectors[0].mnemonic, "")
	require.NoError(t, err)
	master, err := hd.NewMasterKey(seed)
	require.NoError(t, err)
	acct, err := master.Derive(hd.AccountPath)
	require.NoError(t, err)
	a, err := hd.NewAccount(acct.XPub())
	require.NoError(t, err)
	require.Equal(t, acct.XPub(), a.XPub())

	for _, i := range []uint32{0, 1, 2, 3, 1000, hd.Hardened - 1} {
		fromXPub, err := a.DepositAddress(i)
		require.NoError(t, err)
		k, err := master.Derive(hd.DepositPath(i))
		require.NoError(t, err)
		priv, err := k.PrivateKey()
		require.NoError(t, err)
		require.Equal(t, crypto.PubkeyToAddress(priv.PublicKey), fromXPub, "index %d", i)
		addr, err := k.Address()
		require.NoError(t, err)
		require.Equal(t, addr, fromXPub)
	}
	// The well-known first address of "abandon ... about" with no
	// passphrase at m/44'/60'/0'/0/0 (MetaMask, Ledger Live and MyCrypto
	// show it).
	first, err := a.DepositAddress(0)
	require.NoError(t, err)
	require.Equal(t, "0x9858EfFD232B4033E47d90003D41EC34EcaEda94", first.Hex())

	_, err = a.DepositAddress(hd.Hardened)
	require.ErrorIs(t, err, hd.ErrHardenedFromPublic)
	xprv, err := acct.XPrv()
	require.NoError(t, err)
	_, err = hd.NewAccount(xprv)
	require.ErrorIs(t, err, hd.ErrNotPublic)
	_, err = hd.NewAccount(master.XPub())
	require.ErrorIs(t, err, hd.ErrNotAccount)
	_, err = hd.NewAccount(acct.XPub()[:len(acct.XPub())-1] + "x")
	require.ErrorIs(t, err, hd.ErrExtendedKey)
	_, err = acct.Public().Derive(hd.Path{hd.Hardened})
	require.ErrorIs(t, err, hd.ErrHardenedFromPublic)
}
