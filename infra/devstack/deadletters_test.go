package devstack_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func queueDepth(t *testing.T, logicalID string) int {
	t.Helper()
	q, _ := sys.Resources.Get(logicalID)
	out, err := sys.Clients.SQS.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(q.URL), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages},
	})
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)])
	return n
}

// A step that keeps failing ends in the DLQ after maxReceiveCount, shows in
// GET /v1/dead-letters with its reason, and once the cause is fixed a
// re-drive completes it exactly once. (About a minute: the real back-off.)
func TestDeadLetterAndRedrive(t *testing.T) {
	needSystem(t)
	t.Parallel()
	a := newWorkspace(t, "Dead letters")
	a.must(http.MethodPut, "/v1/channel", map[string]string{"url": gateway.URL(), "secret": connectorSecret}, http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/tunnels/d", json.RawMessage(`{"name": "D", "entry": "hello", "blocks": [
		{"id": "hello", "type": "message", "text": "Hello {{subscriber.first_name}}"}]}`), http.StatusOK, nil)
	gateway.failFor("dlq-1", true)
	sub := a.subscribe("d-1", "d", "dlq-1", "Dora")

	type deadLetter struct {
		ID    string `json:"id"`
		Queue string `json:"queue"`
		Step  struct {
			StepID       string `json:"step_id"`
			SubscriberID string `json:"subscriber_id"`
			Block        string `json:"block"`
		} `json:"step"`
		Reason   string `json:"reason"`
		Attempts int    `json:"attempts"`
	}
	var list struct {
		DeadLetters []deadLetter `json:"dead_letters"`
	}
	eventually(t, 150*time.Second, "the step to be dead-lettered", func() (bool, string) {
		a.must(http.MethodGet, "/v1/dead-letters", nil, http.StatusOK, &list)
		return len(list.DeadLetters) == 1, strconv.Itoa(gateway.refusals("dlq-1")) + " refusals"
	})
	d := list.DeadLetters[0]
	if d.Queue != "flow" || d.Step.SubscriberID != sub || d.Step.Block != "hello" || d.Attempts != 5 || d.Reason == "" {
		t.Errorf("dead letter %+v", d)
	}
	if n := gateway.refusals("dlq-1"); n != 5 {
		t.Errorf("the gateway refused %d deliveries, want 5 (maxReceiveCount)", n)
	}
	// Nothing in the journey yet: a dead letter is not a recorded outcome.
	if j := a.journey(sub); len(j) != 0 {
		t.Errorf("journey before the re-drive:%s", describe(j))
	}
	// Another workspace neither sees nor re-drives it.
	other := newWorkspace(t, "Other")
	var none struct {
		DeadLetters []deadLetter `json:"dead_letters"`
	}
	other.must(http.MethodGet, "/v1/dead-letters", nil, http.StatusOK, &none)
	var r struct {
		Redriven int `json:"redriven"`
	}
	other.must(http.MethodPost, "/v1/dead-letters/redrive", map[string][]string{"ids": {d.ID}}, http.StatusOK, &r)
	if len(none.DeadLetters) != 0 || r.Redriven != 0 {
		t.Errorf("another workspace sees %v and re-drove %d", none.DeadLetters, r.Redriven)
	}
	eventually(t, 60*time.Second, "the message to reach the DLQ", func() (bool, string) {
		n := queueDepth(t, "FlowDLQ")
		return n >= 1, strconv.Itoa(n)
	})

	// Fix the cause, re-drive: the step completes, once.
	gateway.failFor("dlq-1", false)
	a.must(http.MethodPost, "/v1/dead-letters/redrive", nil, http.StatusOK, &r)
	if r.Redriven != 1 {
		t.Fatalf("redriven %d", r.Redriven)
	}
	a.must(http.MethodPost, "/v1/dead-letters/redrive", nil, http.StatusOK, &r)
	if r.Redriven != 0 {
		t.Errorf("a second re-drive sent %d again", r.Redriven)
	}
	eventually(t, 30*time.Second, "the re-driven step to complete", func() (bool, string) {
		s, ok := find(a.journey(sub), "d", "hello", -1)
		return ok && s.Status == "done", describe(a.journey(sub))
	})
	if got := gateway.forSubscriber(sub); len(got) != 1 || got[0].Msg.Text != "Hello Dora" {
		t.Errorf("gateway received %+v", got)
	}
	a.must(http.MethodGet, "/v1/dead-letters", nil, http.StatusOK, &list)
	if len(list.DeadLetters) != 0 {
		t.Errorf("still listed after the re-drive: %+v", list.DeadLetters)
	}
	if n := queueDepth(t, "FlowDLQ"); n != 0 {
		t.Errorf("the re-driven step's copy is still in the DLQ (%d messages)", n)
	}
}
