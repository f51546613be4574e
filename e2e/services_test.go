package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/jackc/pgx/v5"

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

// dumpPostgres renders every row of every user table as JSON text (bytea as \x hex),
// the PostgreSQL counterpart of reading the embedded store's file bytes.
func dumpPostgres(t *testing.T, dbURL string) []byte {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatalf("connect to the gateway's database: %v", err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), `SELECT table_schema, table_name FROM information_schema.tables
		WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var schema, name string
		if err := rows.Scan(&schema, &name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, pgx.Identifier{schema, name}.Sanitize())
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(tables) == 0 {
		t.Fatal("the gateway's PostgreSQL database has no tables")
	}
	var b strings.Builder
	for _, tbl := range tables {
		rows, err := conn.Query(t.Context(), fmt.Sprintf("SELECT row_to_json(t)::text FROM %s t", tbl))
		if err != nil {
			t.Fatalf("dump %s: %v", tbl, err)
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			b.WriteString(tbl + " " + line + "\n")
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return []byte(b.String())
}
