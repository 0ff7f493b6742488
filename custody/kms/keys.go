package kms

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// KeyCreator is the part of the AWS KMS API that creates keys: what
// payflow-signer calls for a new signing key, and once for the key its
// envelopes seal under. *kms.Client implements it.
type KeyCreator interface {
	CreateKey(ctx context.Context, in *kms.CreateKeyInput, optFns ...func(*kms.Options)) (*kms.CreateKeyOutput, error)
}

// CreateSigningKey creates a KMS key of spec ECC_SECG_P256K1 for signing
// (what NewSigner takes) and returns its id.
func CreateSigningKey(ctx context.Context, api KeyCreator, description string) (string, error) {
	return createKey(ctx, api, &kms.CreateKeyInput{
		KeySpec:     kmstypes.KeySpecEccSecgP256k1,
		KeyUsage:    kmstypes.KeyUsageTypeSignVerify,
		Description: aws.String(description),
	})
}

// CreateEnvelopeKey creates a symmetric KMS key (SYMMETRIC_DEFAULT,
// ENCRYPT_DECRYPT) whose data keys an Envelope seals under, and returns its
// id.
func CreateEnvelopeKey(ctx context.Context, api KeyCreator, description string) (string, error) {
	return createKey(ctx, api, &kms.CreateKeyInput{
		KeySpec:     kmstypes.KeySpecSymmetricDefault,
		KeyUsage:    kmstypes.KeyUsageTypeEncryptDecrypt,
		Description: aws.String(description),
	})
}

func createKey(ctx context.Context, api KeyCreator, in *kms.CreateKeyInput) (string, error) {
	out, err := api.CreateKey(ctx, in)
	if err != nil {
		return "", fmt.Errorf("creating a KMS key of spec %s: %w", in.KeySpec, err)
	}
	if out.KeyMetadata == nil || aws.ToString(out.KeyMetadata.KeyId) == "" {
		return "", fmt.Errorf("creating a KMS key of spec %s: the KMS named no key", in.KeySpec)
	}
	return aws.ToString(out.KeyMetadata.KeyId), nil
}
