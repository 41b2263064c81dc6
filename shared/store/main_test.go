package store

// Integration tests of the store against the real DynamoDB Local, on a table
// provisioned from template.yaml. TestMain starts the emulators once and
// stops them (by Stack.Stop, so no process is left) when every test is done;
// under -short nothing starts and every test skips itself.
//
// Every test works in a workspace of its own (see newStore), so the tests run
// in parallel on one table without seeing each other's items.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tunnels/tunnels/infra/localstack"
	"github.com/tunnels/tunnels/shared/engine"
)

var (
	// testDB and testTable are set by TestMain when the stack runs.
	testDB    *dynamodb.Client
	testTable string
)

// t0 is the clock of every test's store when it starts.
var t0 = time.Date(2026, 11, 24, 10, 0, 0, 123456789, time.UTC)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runTests(m))
}

// runTests is TestMain's body, so its deferred Stop runs before os.Exit.
func runTests(m *testing.M) int {
	if testing.Short() {
		return m.Run() // every test skips itself
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, err := localstack.EnsureEmulators(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "store tests: emulators:", err)
		return 1
	}
	stack, err := localstack.Start(ctx, localstack.Options{EmulatorsDir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, "store tests: start the stack:", err)
		return 1
	}
	defer func() {
		if err := stack.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "store tests: stop the stack:", err)
		}
	}()
	if err := setUp(ctx, stack); err != nil {
		fmt.Fprintln(os.Stderr, "store tests:", err)
		return 1
	}
	return m.Run()
}

// setUp provisions the template's table and builds the client the tests use.
func setUp(ctx context.Context, stack *localstack.Stack) error {
	clients, err := stack.Clients(ctx)
	if err != nil {
		return fmt.Errorf("clients: %w", err)
	}
	root, err := localstack.RepoRoot()
	if err != nil {
		return err
	}
	res, err := localstack.Provision(ctx, filepath.Join(root, "template.yaml"), clients,
		map[string]string{"AdminToken": "x-admin-token"})
	if err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	table, ok := res.Get("Table")
	if !ok || table.Name == "" {
		return fmt.Errorf("the template provisioned no Table")
	}
	cfg, err := stack.AWSConfig(ctx)
	if err != nil {
		return fmt.Errorf("aws config: %w", err)
	}
	// DynamoDB Local's error answers carry a CRC32 the SDK cannot match; without
	// this every failed condition check logs a warning.
	testDB = dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.DisableValidateResponseChecksum = true })
	testTable = table.Name
	return nil
}

// testClock is a clock the test moves by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newStore makes a store on the test table with a hand-moved clock at t0 and
// a workspace id no other test uses.
func newStore(t *testing.T) (*Store, *testClock, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration: needs DynamoDB Local")
	}
	if testDB == nil {
		t.Fatal("the local stack is not running")
	}
	t.Parallel()
	c := &testClock{t: t0}
	st := New(testDB, testTable)
	st.now = c.Now
	return st, c, uniqueID(t.Name())
}

func uniqueID(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return strings.NewReplacer("/", "-", "#", "-", " ", "-").Replace(prefix) + "-" + hex.EncodeToString(b[:])
}

// newSubscriber creates a subscriber through the store and answers its id.
func newSubscriber(t *testing.T, st *Store, ws, externalID string) string {
	t.Helper()
	id, err := st.UpsertSubscriber(t.Context(), ws, engine.Identity{Channel: "telegram", ExternalID: externalID},
		Profile{FirstName: "First " + externalID})
	if err != nil {
		t.Fatalf("UpsertSubscriber(%s): %v", externalID, err)
	}
	return id
}

func mustSubscriber(t *testing.T, st *Store, ws, id string) *engine.Subscriber {
	t.Helper()
	sub, err := st.Subscriber(t.Context(), ws, id)
	if err != nil {
		t.Fatalf("Subscriber(%s): %v", id, err)
	}
	return sub
}

// putRaw writes an item the way the store lays items out, for states the
// store has no method to make.
func putRaw(t *testing.T, item map[string]types.AttributeValue) {
	t.Helper()
	if _, err := testDB.PutItem(t.Context(), &dynamodb.PutItemInput{TableName: aws.String(testTable), Item: item}); err != nil {
		t.Fatalf("PutItem: %v", err)
	}
}

func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s = %s, want %s", what, got.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
	}
}

// sameJSON compares two values by their JSON form (what the store keeps of
// steps, children and outgoing messages).
func sameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatalf("%s: marshal got: %v", what, err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatalf("%s: marshal want: %v", what, err)
	}
	if string(g) != string(w) {
		t.Errorf("%s =\n  %s\nwant\n  %s", what, g, w)
	}
}
