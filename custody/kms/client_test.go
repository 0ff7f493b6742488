package kms_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	custodykms "payflow/custody/kms"
)

// noAWSEnvironment hides the caller's AWS settings from the SDK.
func noAWSEnvironment(t *testing.T) {
	none := filepath.Join(t.TempDir(), "none")
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", none)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
}

func TestNewClientNeedsARegion(t *testing.T) {
	noAWSEnvironment(t)
	_, err := custodykms.NewClient(context.Background(), custodykms.Config{})
	require.ErrorContains(t, err, "no region")

	t.Setenv("AWS_REGION", "eu-central-1")
	c, err := custodykms.NewClient(context.Background(), custodykms.Config{})
	require.NoError(t, err, "the region from the SDK's sources")
	require.Equal(t, "eu-central-1", c.Options().Region)

	c, err = custodykms.NewClient(context.Background(), custodykms.DevConfig("http://127.0.0.1:1"))
	require.NoError(t, err)
	require.Equal(t, custodykms.DevRegion, c.Options().Region, "the configured region wins")
	require.Equal(t, "http://127.0.0.1:1", *c.Options().BaseEndpoint)
}

func TestNewClientRefusesHalfStaticCredentials(t *testing.T) {
	noAWSEnvironment(t)
	_, err := custodykms.NewClient(context.Background(), custodykms.Config{Region: "eu-west-2", AccessKeyID: "id"})
	require.ErrorContains(t, err, "both")
}
