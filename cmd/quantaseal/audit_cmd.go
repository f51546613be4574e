package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/audit/pgstore"
	"github.com/quantaseal/gateway/audit/sqlitestore"
	"github.com/quantaseal/gateway/internal/secret"
	"github.com/quantaseal/gateway/internal/sqlitedb"
)

// Files in the data directory that `serve` and `audit` agree on.
const (
	// embeddedDBFile is the embedded store's SQLite database, <data-dir>/quantaseal.db.
	embeddedDBFile = "quantaseal.db"
	// signingKeyFile holds the gateway's ML-DSA-65 signing key as its 32-byte seed
	// (raw bytes, mode 0600), <data-dir>/signing.key.
	signingKeyFile = "signing.key"
)

// runAudit implements `quantaseal audit export|verify`.
func runAudit(ctx context.Context, cio cmdIO, args []string) error {
	if len(args) == 0 {
		return usagef("audit: want a subcommand: export | verify")
	}
	switch args[0] {
	case "export":
		return runAuditExport(ctx, cio, args[1:])
	case "verify":
		return runAuditVerify(ctx, cio, args[1:])
	case "-h", "--help", "help":
		fmt.Fprintln(cio.Stdout, "usage: quantaseal audit export [flags] | quantaseal audit verify [flags]")
		return errHelp
	default:
		return usagef("audit: unknown subcommand %q (want export or verify)", args[0])
	}
}

// storeFlags locate the audit store: PostgreSQL or the embedded store of a data directory.
type storeFlags struct {
	databaseURL *string
	dataDir     *string
}

func (s storeFlags) register(f interface {
	String(name, value, usage string) *string
}) storeFlags {
	s.databaseURL = f.String("database-url", "", "PostgreSQL URL of the audit store (default $QUANTASEAL_DATABASE_URL)")
	s.dataDir = f.String("data-dir", "", "data directory of the embedded store and the gateway signing key (default $QUANTASEAL_DATA_DIR, else ./quantaseal-data)")
	return s
}

// resolve picks the store for export and verify: the flags, else
// $QUANTASEAL_DATABASE_URL, else $QUANTASEAL_DATA_DIR, else the default data directory.
func (s storeFlags) resolve(cio cmdIO) (dbURL, dataDir string, err error) {
	dbURL, dataDir = *s.databaseURL, *s.dataDir
	if dbURL != "" && dataDir != "" {
		return "", "", usagef("give --database-url or --data-dir, not both")
	}
	if dbURL == "" && dataDir == "" {
		if dbURL = getenv(cio, "QUANTASEAL_DATABASE_URL"); dbURL == "" {
			dataDir = defaultDataDir(cio)
		}
	}
	return dbURL, dataDir, nil
}

func getenv(cio cmdIO, name string) string {
	if cio.Getenv == nil {
		return ""
	}
	return cio.Getenv(name)
}

// defaultDataDir is $QUANTASEAL_DATA_DIR, else serve's default.
func defaultDataDir(cio cmdIO) string {
	if d := getenv(cio, "QUANTASEAL_DATA_DIR"); d != "" {
		return d
	}
	return defaultConfig().DataDir
}

// openStore opens the audit store read-write (the migrations may run); close releases it.
func openStore(ctx context.Context, dbURL, dataDir string) (store audit.Store, close func(), err error) {
	if dbURL != "" {
		pool, err := pgxpool.New(ctx, dbURL)
		if err != nil {
			return nil, nil, errors.New("open PostgreSQL: invalid --database-url") // the URL may hold a password
		}
		s, err := pgstore.New(ctx, pool)
		if err != nil {
			pool.Close()
			return nil, nil, err
		}
		return s, pool.Close, nil
	}
	path := filepath.Join(dataDir, embeddedDBFile)
	if _, err := os.Stat(path); err != nil {
		return nil, nil, fmt.Errorf("embedded store: %w", err) // never create an empty store to verify
	}
	db, err := sqlitedb.Open(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	s, err := sqlitestore.New(ctx, db)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return s, func() { closeDB(db) }, nil
}

func closeDB(db *sql.DB) { _ = db.Close() }

func runAuditExport(ctx context.Context, cio cmdIO, args []string) error {
	f := newFlagSet("audit export", cio.Stderr, "[--chain ID] [--since RFC3339] [--database-url URL | --data-dir DIR] [--out FILE]")
	chain := f.String("chain", "", "export only this chain (e.g. ten_…/w1)")
	since := f.String("since", "", "export each chain from its first event at or after this RFC 3339 time (verify with --partial)")
	out := f.String("out", "", "write to FILE (mode 0600) instead of stdout")
	sf := storeFlags{}.register(f)
	if err := parseFlags(f, args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return usagef("unexpected argument %q", f.Arg(0))
	}
	opts := audit.ExportOptions{ChainID: *chain}
	if *since != "" {
		t, err := time.Parse(time.RFC3339Nano, *since)
		if err != nil {
			return usagef("--since %q: want an RFC 3339 time", *since)
		}
		opts.Since = t
	}
	dbURL, dataDir, err := sf.resolve(cio)
	if err != nil {
		return err
	}
	store, closeStore, err := openStore(ctx, dbURL, dataDir)
	if err != nil {
		return err
	}
	defer closeStore()

	w := cio.Stdout
	var file *os.File
	if *out != "" {
		if file, err = os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
			return err
		}
		defer file.Close()
		w = file
	}
	evs, cps, err := audit.Export(ctx, store, audit.NewExportWriter(w), opts)
	if err != nil {
		return err
	}
	if file != nil {
		if err := file.Close(); err != nil {
			return err
		}
	}
	fmt.Fprintf(cio.Stderr, "exported %d events and %d checkpoints\n", evs, cps)
	return nil
}

func runAuditVerify(ctx context.Context, cio cmdIO, args []string) error {
	f := newFlagSet("audit verify", cio.Stderr, "[--file FILE | --database-url URL] [--data-dir DIR] [--keys signing-keys.json] [--partial] [--max-checkpoint-lag D]")
	file := f.String("file", "", "verify this export (JSON Lines; - for stdin) instead of a live store")
	keysFile := f.String("keys", "", "public keys: the JSON of GET /api/v2/signing-keys")
	partial := f.Bool("partial", false, "accept chains that start after seq 1 (an export made with --since)")
	lag := f.Duration("max-checkpoint-lag", audit.DefaultMaxCheckpointLag, "longest time events may stay unsigned at the end of a chain")
	maxUnsigned := f.Int64("max-unsigned", audit.DefaultCheckpointEvery, "events after the newest checkpoint must be fewer than this")
	sf := storeFlags{}.register(f)
	if err := parseFlags(f, args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return usagef("unexpected argument %q", f.Arg(0))
	}
	if *file != "" && *sf.databaseURL != "" {
		return usagef("give --file or --database-url, not both")
	}
	if *file != "" && *sf.dataDir != "" && *keysFile != "" {
		return usagef("--data-dir with --file names the signing key; --keys already does")
	}
	if *lag <= 0 || *maxUnsigned <= 0 {
		return usagef("--max-checkpoint-lag and --max-unsigned must be positive")
	}

	// Keys: --keys, plus the gateway key of the data directory when one is named or
	// when no --keys was given (then the data directory is required to hold one).
	keys := map[string][]byte{}
	if *keysFile != "" {
		if err := readPublicKeys(*keysFile, keys); err != nil {
			return err
		}
	}
	if keyDir := *sf.dataDir; keyDir != "" || *keysFile == "" {
		if keyDir == "" {
			keyDir = defaultDataDir(cio)
		}
		if err := dataDirKey(keyDir, keys, *keysFile == ""); err != nil {
			return err
		}
	}

	var evs []audit.Event
	var cps []audit.SignedCheckpoint
	var err error
	switch {
	case *file != "":
		evs, cps, err = readExportFile(cio, *file)
	case *sf.databaseURL != "":
		evs, cps, err = loadStore(ctx, *sf.databaseURL, "")
	default:
		dbURL, dataDir, rerr := sf.resolve(cio)
		if rerr != nil {
			return rerr
		}
		evs, cps, err = loadStore(ctx, dbURL, dataDir)
	}
	if err != nil {
		return err
	}
	if err := audit.Verify(evs, cps, keys, audit.VerifyOptions{MaxCheckpointLag: *lag, MaxUnsigned: *maxUnsigned, Partial: *partial}); err != nil {
		return err
	}
	printSummary(cio.Stdout, evs, cps)
	return nil
}

func readExportFile(cio cmdIO, path string) ([]audit.Event, []audit.SignedCheckpoint, error) {
	if path == "-" {
		return audit.ReadExport(cio.Stdin)
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer fh.Close()
	return audit.ReadExport(fh)
}

// loadStore exports the live store in memory and parses it back, so that the store is
// verified through exactly the path an auditor's export takes.
func loadStore(ctx context.Context, dbURL, dataDir string) ([]audit.Event, []audit.SignedCheckpoint, error) {
	store, closeStore, err := openStore(ctx, dbURL, dataDir)
	if err != nil {
		return nil, nil, err
	}
	defer closeStore()
	var buf bytes.Buffer
	if _, _, err := audit.Export(ctx, store, audit.NewExportWriter(&buf), audit.ExportOptions{}); err != nil {
		return nil, nil, err
	}
	return audit.ReadExport(&buf)
}

// signingKeysDoc is the shape of GET /api/v2/signing-keys.
type signingKeysDoc struct {
	Keys []struct {
		KeyID     string `json:"key_id"`
		Algorithm string `json:"algorithm"`
		PublicKey string `json:"public_key"`
		Current   bool   `json:"current"`
	} `json:"keys"`
}

func readPublicKeys(path string, into map[string][]byte) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc signingKeysDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("keys %s: %w", path, err)
	}
	for i, k := range doc.Keys {
		if k.Algorithm != "ML-DSA-65" {
			return fmt.Errorf("keys %s: key %d: algorithm %q, want ML-DSA-65", path, i+1, k.Algorithm)
		}
		pub, err := base64.StdEncoding.DecodeString(k.PublicKey)
		if err != nil {
			return fmt.Errorf("keys %s: key %d: public_key is not base64", path, i+1)
		}
		if audit.KeyID(pub) != k.KeyID {
			return fmt.Errorf("keys %s: key %d: key_id %q does not match its public key", path, i+1, k.KeyID)
		}
		into[k.KeyID] = pub
	}
	return nil
}

// dataDirKey adds the public key of <dataDir>/signing.key; a missing file is an error
// only when it is the sole source of keys.
func dataDirKey(dataDir string, into map[string][]byte, required bool) error {
	seed, err := readKeyFile(filepath.Join(dataDir, signingKeyFile), 32)
	if errors.Is(err, fs.ErrNotExist) && !required {
		return nil
	}
	if err != nil {
		return fmt.Errorf("gateway signing key: %w", err)
	}
	s, err := newAuditSigner(seed)
	if err != nil {
		return err
	}
	into[s.KeyID()] = s.PublicKey()
	return nil
}

// newAuditSigner derives the gateway's checkpoint signer from the signing key seed;
// `serve` uses the same derivation.
func newAuditSigner(seed secret.Secret) (*audit.SeedSigner, error) { return audit.NewSeedSigner(seed) }

func printSummary(w io.Writer, evs []audit.Event, cps []audit.SignedCheckpoint) {
	type chain struct {
		first, last, signed int64
	}
	chains := map[string]*chain{}
	for _, e := range evs {
		c := chains[e.ChainID]
		if c == nil {
			c = &chain{first: e.Seq}
			chains[e.ChainID] = c
		}
		c.last = e.Seq
	}
	for _, sc := range cps {
		if c, err := audit.ParseCheckpointNote(sc.Note); err == nil && chains[c.ChainID] != nil {
			chains[c.ChainID].signed = max(chains[c.ChainID].signed, c.Seq)
		}
	}
	ids := make([]string, 0, len(chains))
	for id := range chains {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		c := chains[id]
		fmt.Fprintf(w, "chain %s: seq %d..%d, signed through %d\n", id, c.first, c.last, c.signed)
	}
	fmt.Fprintf(w, "OK: %d chains, %d events, %d checkpoints verified\n", len(chains), len(evs), len(cps))
}
