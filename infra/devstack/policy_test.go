package devstack_test

import (
	"fmt"
	"path/filepath"
	"sort"

	"github.com/tunnels/tunnels/infra/localstack"
	"github.com/tunnels/tunnels/shared/samtemplate"
)

// calls counts every AWS call of the shared system's functions while the
// package's tests run (TestMain checks them against the template's policies).
var calls = &localstack.CallCounter{}

// unauthorizedCalls lists the calls a function made that its policy in
// template.yaml does not allow: the emulators take any call, AWS would
// refuse these with AccessDenied. Actions are checked, not resources.
func unauthorizedCalls(seen map[localstack.CallKey]localstack.CallStats) ([]string, error) {
	root, err := localstack.RepoRoot()
	if err != nil {
		return nil, err
	}
	tpl, err := samtemplate.Open(filepath.Join(root, "template.yaml"))
	if err != nil {
		return nil, err
	}
	var out []string
	for k, s := range seen {
		f, ok := tpl.Function(k.Label)
		if !ok || s.Calls == 0 {
			continue // the local stack's own calls (the event source mappings)
		}
		action, ok := iamAction(k.Service, k.Operation)
		if !ok {
			continue
		}
		grants, err := samtemplate.Grants(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k.Label, err)
		}
		allowed := false
		for _, g := range grants {
			allowed = allowed || g.Allows(action, "")
		}
		if !allowed {
			out = append(out, fmt.Sprintf("%s called %s %s (%d times): its policy does not allow %s", k.Label, k.Service, k.Operation, s.Calls, action))
		}
	}
	sort.Strings(out)
	return out, nil
}

// iamAction is the IAM action that authorizes an SDK operation. ok is false
// for TransactWriteItems, which each of its items authorizes (PutItem,
// UpdateItem, DeleteItem, ConditionCheckItem): the counter does not see them.
func iamAction(service, operation string) (action string, ok bool) {
	switch service {
	case "DynamoDB":
		switch operation {
		case "TransactWriteItems":
			return "", false
		case "TransactGetItems":
			return "dynamodb:GetItem", true
		}
		return "dynamodb:" + operation, true
	case "SQS":
		switch operation {
		case "SendMessageBatch", "DeleteMessageBatch", "ChangeMessageVisibilityBatch":
			operation = operation[:len(operation)-len("Batch")]
		}
		return "sqs:" + operation, true
	case "SESv2":
		return "ses:" + operation, true
	}
	return service + ":" + operation, true
}
