// Package kms reaches a key management service through the AWS KMS API:
// AWS KMS itself in production, local-kms in the dev stack. It holds two
// uses of it: an Ethereum signer over a KMS key of spec ECC_SECG_P256K1
// (the private key never leaves the KMS), and envelope encryption of other
// key material under a KMS data key.
package kms

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// API is the part of the AWS KMS API this package calls. *kms.Client
// implements it.
type API interface {
	GetPublicKey(ctx context.Context, in *kms.GetPublicKeyInput, optFns ...func(*kms.Options)) (*kms.GetPublicKeyOutput, error)
	Sign(ctx context.Context, in *kms.SignInput, optFns ...func(*kms.Options)) (*kms.SignOutput, error)
	GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, optFns ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error)
	Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error)
}

// Config says which KMS to reach and as whom.
type Config struct {
	// Endpoint is the KMS API's URL when it is not AWS's regional one: the
	// dev stack's local-kms (stack.json's kms_endpoint). Empty: AWS KMS in
	// Region.
	Endpoint string
	// Region is the AWS region. Empty: the SDK's usual sources
	// (AWS_REGION, the shared config file's profile).
	Region string
	// AccessKeyID and SecretAccessKey are static credentials, for local-kms
	// (which accepts any). Empty: the SDK's default credential chain
	// (environment, shared files, SSO, web identity, ECS or EC2 roles).
	AccessKeyID     string
	SecretAccessKey string
}

// DevRegion is the region the dev stack runs local-kms in. local-kms keeps
// keys under ARNs that name its own region; the client's region only signs
// requests.
const DevRegion = "eu-west-2"

// DevConfig is the Config of the dev stack's local-kms at endpoint: static
// dummy credentials and DevRegion.
func DevConfig(endpoint string) Config {
	return Config{Endpoint: endpoint, Region: DevRegion, AccessKeyID: "local", SecretAccessKey: "local"}
}

// NewClient builds a KMS client from cfg. It fails when no region is known
// (neither cfg.Region nor the SDK's sources name one), since every request
// is signed for a region; it does not call the KMS, so a KMS that is down
// shows at the first request.
func NewClient(ctx context.Context, cfg Config) (*kms.Client, error) {
	var opts []func(*config.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if (cfg.AccessKeyID == "") != (cfg.SecretAccessKey == "") {
		return nil, errors.New("building a KMS client: static credentials need both an access key id and a secret access key")
	}
	if cfg.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		return nil, errors.New("building a KMS client: no region (set it in the configuration or AWS_REGION)")
	}
	return kms.NewFromConfig(awsCfg, func(o *kms.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	}), nil
}
