package localstack

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	sestypes "github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// TestLocalStack runs the real emulators: start, provision the fixture,
// drive a queue like Lambda would, and stop leaving no process behind.
func TestLocalStack(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: starts the emulators")
	}
	ctx := context.Background()
	began := time.Now()
	st, err := Start(ctx, Options{LogDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Start took %v (emulators installed before); endpoints %+v", time.Since(began), st.Endpoints)
	pids := st.Pids()
	stopped := false
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range []string{st.Logs.DynamoDB, st.Logs.SQS, st.Logs.SESv2} {
				t.Logf("--- %s:\n%s", l, fileTail(l, 2000))
			}
		}
		if !stopped {
			st.Stop()
		}
	})
	if len(pids) != 3 {
		t.Fatalf("pids %v, want 3", pids)
	}
	for _, u := range []string{st.Endpoints.DynamoDB, st.Endpoints.SQS, st.Endpoints.SESv2} {
		if !strings.HasPrefix(u, "http://127.0.0.1:") {
			t.Errorf("endpoint %q not on loopback", u)
		}
	}
	c, err := st.Clients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Provision(ctx, fixture, c, map[string]string{"AdminToken": "tok"})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("table", func(t *testing.T) { checkTable(t, ctx, c, res) })
	t.Run("queues", func(t *testing.T) { checkQueues(t, ctx, c, res) })
	t.Run("function env", func(t *testing.T) {
		env, err := res.FunctionEnv("FlowFunction")
		if err != nil {
			t.Fatal(err)
		}
		flow, _ := res.Get("FlowQueue")
		if env["TUNNELS_TABLE"] != "tunnels-Table" || env["TUNNELS_QUEUE_FLOW"] != flow.URL ||
			env["TUNNELS_FLOW_ARN"] != flow.ARN || !strings.HasPrefix(flow.ARN, "arn:aws:sqs:us-east-1:") {
			t.Errorf("env %v, flow queue %+v", env, flow)
		}
		// The URL in the environment is usable as is.
		if _, err := c.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(env["TUNNELS_QUEUE_TAGS"])}); err != nil {
			t.Error(err)
		}
	})
	t.Run("attach sees the same resources", func(t *testing.T) {
		again, err := Attach(ctx, fixture, c, map[string]string{"AdminToken": "tok"})
		if err != nil {
			t.Fatal(err)
		}
		for id, want := range res.ByID {
			if got := again.ByID[id]; got != want {
				t.Errorf("%s: attach %+v, provision %+v", id, got, want)
			}
		}
	})
	t.Run("second provision with a prefix", func(t *testing.T) {
		other, err := Provision(ctx, fixture, c, map[string]string{"AdminToken": "tok"}, WithPrefix("t2-"))
		if err != nil {
			t.Fatal(err)
		}
		if q, _ := other.Get("FlowQueue"); q.Name != "t2-FlowQueue" || q.URL == res.ByID["FlowQueue"].URL {
			t.Errorf("prefixed queue %+v", q)
		}
	})
	t.Run("real template", func(t *testing.T) {
		root, err := RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		real, err := Provision(ctx, root+"/template.yaml", c, map[string]string{"AdminToken": "dev-admin-token"}, WithPrefix("real-"))
		if err != nil {
			t.Fatal(err)
		}
		if len(real.ByID) != 11 { // the table and 5 queues with their DLQs
			t.Errorf("provisioned %d resources, want 11", len(real.ByID))
		}
	})
	t.Run("poller partial failure and redrive", func(t *testing.T) { checkRedrive(t, ctx, c, res) })
	t.Run("poller whole batch failure", func(t *testing.T) { checkWholeBatchFailure(t, ctx, c, res) })
	t.Run("sqs delay, long poll, visibility", func(t *testing.T) { checkSQSBasics(t, ctx, c) })
	t.Run("ses store", func(t *testing.T) { checkSES(t, ctx, c, st.Endpoints.SESv2) })

	stopBegan := time.Now()
	if err := st.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	t.Logf("Stop took %v", time.Since(stopBegan))
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("pid %d still there after Stop (kill 0: %v)", pid, err)
		}
		if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process group %d still there after Stop (kill 0: %v)", pid, err)
		}
	}
	for _, u := range []string{st.Endpoints.DynamoDB, st.Endpoints.SQS, st.Endpoints.SESv2} {
		pu, _ := url.Parse(u)
		if conn, err := net.DialTimeout("tcp", pu.Host, time.Second); err == nil {
			conn.Close()
			t.Errorf("%s still accepts connections after Stop", u)
		}
	}
}

func checkTable(t *testing.T, ctx context.Context, c *Clients, res *Resources) {
	tbl, ok := res.Get("Table")
	if !ok || tbl.Name != "tunnels-Table" || !strings.Contains(tbl.ARN, ":table/tunnels-Table") {
		t.Fatalf("table resource %+v", tbl)
	}
	out, err := c.DynamoDB.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(tbl.Name)})
	if err != nil {
		t.Fatal(err)
	}
	d := out.Table
	if d.BillingModeSummary == nil || d.BillingModeSummary.BillingMode != ddbtypes.BillingModePayPerRequest {
		t.Errorf("billing %+v", d.BillingModeSummary)
	}
	if len(d.LocalSecondaryIndexes) != 1 || aws.ToString(d.LocalSecondaryIndexes[0].IndexName) != "Journey" ||
		aws.ToString(d.LocalSecondaryIndexes[0].KeySchema[1].AttributeName) != "jsk" {
		t.Errorf("LSIs %+v", d.LocalSecondaryIndexes)
	}
	if len(d.GlobalSecondaryIndexes) != 1 || aws.ToString(d.GlobalSecondaryIndexes[0].IndexName) != "Inbox" ||
		aws.ToString(d.GlobalSecondaryIndexes[0].KeySchema[0].AttributeName) != "ipk" ||
		d.GlobalSecondaryIndexes[0].Projection.ProjectionType != ddbtypes.ProjectionTypeAll {
		t.Errorf("GSIs %+v", d.GlobalSecondaryIndexes)
	}
	ttl, err := c.DynamoDB.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(tbl.Name)})
	if err != nil {
		t.Fatal(err)
	}
	if ttl.TimeToLiveDescription == nil || aws.ToString(ttl.TimeToLiveDescription.AttributeName) != "expires_at" ||
		ttl.TimeToLiveDescription.TimeToLiveStatus != ddbtypes.TimeToLiveStatusEnabled {
		t.Errorf("ttl %+v", ttl.TimeToLiveDescription)
	}
	// The sparse GSI answers a query.
	_, err = c.DynamoDB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(tbl.Name), Item: map[string]ddbtypes.AttributeValue{
		"pk": &ddbtypes.AttributeValueMemberS{Value: "WS#1#SUB#1"}, "sk": &ddbtypes.AttributeValueMemberS{Value: "PROFILE"},
		"ipk": &ddbtypes.AttributeValueMemberS{Value: "WS#1#UNREAD"}, "isk": &ddbtypes.AttributeValueMemberS{Value: "2026"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	q, err := c.DynamoDB.Query(ctx, &dynamodb.QueryInput{TableName: aws.String(tbl.Name), IndexName: aws.String("Inbox"),
		KeyConditionExpression:    aws.String("ipk = :p"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":p": &ddbtypes.AttributeValueMemberS{Value: "WS#1#UNREAD"}}})
	if err != nil || q.Count != 1 {
		t.Errorf("GSI query: %v, count %d", err, q.Count)
	}
}

func checkQueues(t *testing.T, ctx context.Context, c *Clients, res *Resources) {
	dlq, _ := res.Get("FlowDLQ")
	flow, _ := res.Get("FlowQueue")
	out, err := c.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(flow.URL),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
	if err != nil {
		t.Fatal(err)
	}
	a := out.Attributes
	var rp struct {
		DeadLetterTargetArn string `json:"deadLetterTargetArn"`
		MaxReceiveCount     int    `json:"maxReceiveCount"`
	}
	if err := json.Unmarshal([]byte(a["RedrivePolicy"]), &rp); err != nil {
		t.Fatalf("RedrivePolicy %q: %v", a["RedrivePolicy"], err)
	}
	if rp.DeadLetterTargetArn != dlq.ARN || rp.MaxReceiveCount != 3 || a["VisibilityTimeout"] != "2" ||
		a["MessageRetentionPeriod"] != "1209600" || a["QueueArn"] != flow.ARN {
		t.Errorf("FlowQueue attributes %v (DLQ %s)", a, dlq.ARN)
	}
	list, err := c.SQS.ListQueues(ctx, &sqs.ListQueuesInput{QueueNamePrefix: aws.String("tunnels-")})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.QueueUrls) != 4 {
		t.Errorf("queues %v, want the 4 of the fixture", list.QueueUrls)
	}
}

type delivery struct {
	id, body, count string
}

func checkRedrive(t *testing.T, ctx context.Context, c *Clients, res *Resources) {
	fn, ok := res.Function("FlowFunction")
	if !ok || len(fn.SQS) != 1 {
		t.Fatalf("FlowFunction %+v", fn)
	}
	ev := fn.SQS[0]
	var mu sync.Mutex
	var got []delivery
	var bad []string
	h := func(ctx context.Context, e events.SQSEvent) (events.SQSEventResponse, error) {
		var resp events.SQSEventResponse
		lc, _ := lambdacontext.FromContext(ctx)
		mu.Lock()
		defer mu.Unlock()
		if lc == nil || lc.AwsRequestID == "" {
			bad = append(bad, "no lambda context")
		}
		for _, r := range e.Records {
			sum := md5.Sum([]byte(r.Body))
			switch {
			case r.EventSource != "aws:sqs", r.EventSourceARN != ev.QueueARN, r.AWSRegion != "us-east-1":
				bad = append(bad, fmt.Sprintf("source fields %+v", r))
			case r.Md5OfBody != hex.EncodeToString(sum[:]):
				bad = append(bad, "md5 "+r.Md5OfBody)
			case r.Attributes["SentTimestamp"] == "" || r.Attributes["SenderId"] == "" || r.Attributes["ApproximateFirstReceiveTimestamp"] == "":
				bad = append(bad, fmt.Sprintf("attributes %v", r.Attributes))
			case r.MessageAttributes["kind"].StringValue == nil || *r.MessageAttributes["kind"].StringValue != "step":
				bad = append(bad, fmt.Sprintf("message attributes %+v", r.MessageAttributes))
			}
			got = append(got, delivery{r.MessageId, r.Body, r.Attributes["ApproximateReceiveCount"]})
			if r.Body == "poison" {
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
			}
		}
		return resp, nil
	}
	p := NewPoller(c.SQS, fn, ev, h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(pctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Poller.Run did not return after cancel")
		}
	}()

	attr := map[string]sqstypes.MessageAttributeValue{"kind": {DataType: aws.String("String"), StringValue: aws.String("step")}}
	for _, body := range []string{"ok-1", "poison", "ok-2"} {
		if _, err := c.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(ev.QueueURL), MessageBody: aws.String(body), MessageAttributes: attr}); err != nil {
			t.Fatal(err)
		}
	}
	// maxReceiveCount is 3 and the visibility timeout 2 s: the poison message
	// is received 3 times, then moved to the DLQ on the next receive.
	dlq, _ := res.Get("FlowDLQ")
	var inDLQ []sqstypes.Message
	deadline := time.Now().Add(30 * time.Second)
	for len(inDLQ) == 0 && time.Now().Before(deadline) {
		out, err := c.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(dlq.URL), WaitTimeSeconds: 1, MaxNumberOfMessages: 10,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
		if err != nil {
			t.Fatal(err)
		}
		inDLQ = out.Messages
	}
	if len(inDLQ) != 1 || aws.ToString(inDLQ[0].Body) != "poison" {
		t.Fatalf("DLQ holds %v, want the poison message", inDLQ)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Errorf("malformed records: %v", bad)
	}
	counts := map[string][]string{}
	for _, d := range got {
		counts[d.body] = append(counts[d.body], d.count)
	}
	want := map[string][]string{"ok-1": {"1"}, "ok-2": {"1"}, "poison": {"1", "2", "3"}}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Errorf("deliveries (receive counts by body) %v, want %v", counts, want)
	}
	if aws.ToString(inDLQ[0].MessageId) != idOf(got, "poison") {
		t.Errorf("DLQ message id %s, want the original %s", aws.ToString(inDLQ[0].MessageId), idOf(got, "poison"))
	}
	t.Logf("DLQ copy of the poison message: attributes %v", inDLQ[0].Attributes)
	qa, err := c.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(ev.QueueURL),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
	if err != nil {
		t.Fatal(err)
	}
	if qa.Attributes["ApproximateNumberOfMessages"] != "0" || qa.Attributes["ApproximateNumberOfMessagesNotVisible"] != "0" {
		t.Errorf("FlowQueue not empty: %v", qa.Attributes)
	}
}

func idOf(ds []delivery, body string) string {
	for _, d := range ds {
		if d.body == body {
			return d.id
		}
	}
	return ""
}

func checkWholeBatchFailure(t *testing.T, ctx context.Context, c *Clients, res *Resources) {
	fn, _ := res.Function("TagsFunction")
	ev := fn.SQS[0]
	var mu sync.Mutex
	calls := 0
	seen := map[string][]string{} // body -> receive counts
	var firstBatch []string
	h := func(ctx context.Context, e events.SQSEvent) (events.SQSEventResponse, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		for _, r := range e.Records {
			seen[r.Body] = append(seen[r.Body], r.Attributes["ApproximateReceiveCount"])
			if calls == 1 {
				firstBatch = append(firstBatch, r.Body)
			}
		}
		if calls == 1 {
			// An id that is not in the batch: Lambda fails the whole batch.
			return events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{{ItemIdentifier: "not-in-batch"}}}, nil
		}
		return events.SQSEventResponse{}, nil
	}
	p := NewPoller(c.SQS, fn, ev, h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	p.VisibilityTimeout = 1 // the queue's is 12 s; keep the test short
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(pctx) }()

	_, err := c.SQS.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(ev.QueueURL), Entries: []sqstypes.SendMessageBatchRequestEntry{
		{Id: aws.String("a"), MessageBody: aws.String("a")}, {Id: aws.String("b"), MessageBody: aws.String("b")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	// Done when both were handled in a call that succeeded.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(seen["a"]) + len(seen["b"]) - len(firstBatch)
		mu.Unlock()
		if n >= 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	sort.Strings(firstBatch)
	for _, b := range []string{"a", "b"} {
		want := []string{"1"}
		if contains(firstBatch, b) {
			want = []string{"1", "2"} // failed with the whole first batch, then redelivered
		}
		if fmt.Sprint(seen[b]) != fmt.Sprint(want) {
			t.Errorf("%s: receive counts %v, want %v (first batch %v)", b, seen[b], want, firstBatch)
		}
	}
	if len(firstBatch) == 0 {
		t.Error("first batch empty")
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// checkSQSBasics pins the fauxqs behaviour the system relies on.
func checkSQSBasics(t *testing.T, ctx context.Context, c *Clients) {
	q, err := c.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("tunnels-scratch")})
	if err != nil {
		t.Fatal(err)
	}
	u := q.QueueUrl
	recv := func(wait int32, vis int32) []sqstypes.Message {
		out, err := c.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: u, WaitTimeSeconds: wait, VisibilityTimeout: vis,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
		if err != nil {
			t.Fatal(err)
		}
		return out.Messages
	}

	// DelaySeconds hides a message for that long.
	sent := time.Now()
	if _, err := c.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: u, MessageBody: aws.String("late"), DelaySeconds: 2}); err != nil {
		t.Fatal(err)
	}
	if m := recv(0, 30); len(m) != 0 {
		t.Fatalf("delayed message visible at once: %v", m)
	}
	m := recv(5, 30)
	if len(m) != 1 || time.Since(sent) < 1900*time.Millisecond {
		t.Fatalf("delayed message: got %d after %v, want 1 after >= 2 s", len(m), time.Since(sent))
	}

	// ChangeMessageVisibility 0 makes a received message visible again.
	if _, err := c.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: u, ReceiptHandle: m[0].ReceiptHandle, VisibilityTimeout: 0}); err != nil {
		t.Fatal(err)
	}
	again := recv(0, 30)
	if len(again) != 1 || again[0].Attributes["ApproximateReceiveCount"] != "2" {
		t.Fatalf("after ChangeMessageVisibility 0: %v", again)
	}
	// ... and a longer one keeps it hidden past the queue's timeout.
	if _, err := c.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: u, ReceiptHandle: again[0].ReceiptHandle, VisibilityTimeout: 60}); err != nil {
		t.Fatal(err)
	}
	if m := recv(0, 0); len(m) != 0 {
		t.Fatalf("message visible during its extended visibility timeout: %v", m)
	}

	// A long poll returns when a message arrives, not at the end of its wait.
	got := make(chan []sqstypes.Message, 1)
	start := time.Now()
	go func() {
		out, err := c.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: u, WaitTimeSeconds: 10})
		if err != nil {
			got <- nil
			return
		}
		got <- out.Messages
	}()
	time.Sleep(300 * time.Millisecond)
	if _, err := c.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: u, MessageBody: aws.String("wake")}); err != nil {
		t.Fatal(err)
	}
	lp := <-got
	if len(lp) != 1 || aws.ToString(lp[0].Body) != "wake" || time.Since(start) >= 10*time.Second {
		t.Fatalf("long poll: %v after %v", lp, time.Since(start))
	}
}

func checkSES(t *testing.T, ctx context.Context, c *Clients, sesURL string) {
	_, err := c.SESv2.SendEmail(ctx, &sesv2.SendEmailInput{
		FromEmailAddress: aws.String("noreply@example.test"),
		Destination:      &sestypes.Destination{ToAddresses: []string{"lead@example.test"}},
		Content: &sestypes.EmailContent{Simple: &sestypes.Message{
			Subject: &sestypes.Content{Data: aws.String("hello from the local stack")},
			Body:    &sestypes.Body{Text: &sestypes.Content{Data: aws.String("body text")}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(sesURL + "/store")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), "hello from the local stack") || !strings.Contains(string(b), "lead@example.test") {
		t.Errorf("store: %s", b)
	}
}

// TestStartFailsClearly checks that a broken emulator folder is reported.
func TestStartFailsClearly(t *testing.T) {
	_, err := Start(context.Background(), Options{EmulatorsDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Fatalf("err = %v", err)
	}
}

// TestStartRetriesTakenPort hands every emulator a port another process
// holds: each must notice (fauxqs and SES exit, DynamoDB Local only logs a
// BindException and lives on) and come up on another port.
func TestStartRetriesTakenPort(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: starts the emulators")
	}
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	taken := held.Addr().(*net.TCPAddr).Port
	var mu sync.Mutex
	handed := 0
	pickPort = func() (int, error) {
		mu.Lock()
		defer mu.Unlock()
		if handed < 3 {
			handed++
			return taken, nil
		}
		return freePort()
	}
	defer func() { pickPort = freePort }()

	st, err := Start(context.Background(), Options{LogDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Stop()
	for name, u := range map[string]string{"dynamodb": st.Endpoints.DynamoDB, "sqs": st.Endpoints.SQS, "sesv2": st.Endpoints.SESv2} {
		if strings.HasSuffix(u, fmt.Sprintf(":%d", taken)) {
			t.Errorf("%s on the taken port %d", name, taken)
		}
	}
	for _, l := range []string{st.Logs.DynamoDB, st.Logs.SQS, st.Logs.SESv2} {
		b, _ := os.ReadFile(l)
		if !strings.Contains(string(b), fmt.Sprintf("port %d was taken", taken)) || !strings.Contains(string(b), "(attempt 2)") {
			t.Errorf("%s does not show the retry:\n%s", l, tail(b, 1500))
		}
	}
	// The stack works.
	c, err := st.Clients(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DynamoDB.ListTables(context.Background(), &dynamodb.ListTablesInput{}); err != nil {
		t.Error(err)
	}
}
