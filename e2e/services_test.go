package e2e

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/quantaseal/gateway/internal/testenv"
)

// kmsRegion is the region the local KMS server and the gateway agree on.
const kmsRegion = "eu-west-2"

// postgresURL is a fresh, empty database on the test PostgreSQL (skips without it,
// unless QUANTASEAL_TEST_REQUIRE_SERVICES=1).
func postgresURL(t *testing.T) string {
	t.Helper()
	return testenv.Postgres(t)
}

// configureAWSKMS creates a KMS key on the local KMS server with the AWS SDK and points
// the gateway at it: QUANTASEAL_KMS=aws, the endpoint, region and default key id, and
// static AWS credentials in the subprocess environment (the local server accepts any).
func configureAWSKMS(t *testing.T, o *gatewayOptions) {
	t.Helper()
	endpoint := testenv.KMSEndpoint(t)
	creds := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: "e2e", SecretAccessKey: "e2e-secret", Source: "e2e"}, nil
	})
	cfg, err := config.LoadDefaultConfig(t.Context(), config.WithRegion(kmsRegion), config.WithCredentialsProvider(creds))
	if err != nil {
		t.Fatal(err)
	}
	c := kms.NewFromConfig(cfg, func(o *kms.Options) { o.BaseEndpoint = aws.String(endpoint) })
	out, err := c.CreateKey(t.Context(), &kms.CreateKeyInput{Description: aws.String("quantaseal e2e " + t.Name())})
	if err != nil {
		t.Fatalf("kms CreateKey on %s: %v", endpoint, err)
	}
	o.KMS = "aws"
	o.KMSEndpoint = endpoint
	o.KMSRegion = kmsRegion
	o.KMSKeyID = aws.ToString(out.KeyMetadata.Arn)
	o.Env = append(o.Env,
		"AWS_ACCESS_KEY_ID=e2e", "AWS_SECRET_ACCESS_KEY=e2e-secret", "AWS_REGION="+kmsRegion,
		"AWS_EC2_METADATA_DISABLED=true")
}
