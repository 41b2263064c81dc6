package samtemplate

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
)

// Grant is one Allow statement, reduced to action names and resource tokens:
// a logical id for !GetAtt X.Arn, "X/index/*" for !Sub "${X.Arn}/index/*",
// "ref:X" for !Ref X, "sub:<text>" for another !Sub, a plain string as is.
type Grant struct {
	Actions   []string
	Resources []string
	Condition string // the Fn::If condition the statement depends on, if any
}

// Allows says whether the statement allows action (IAM's spelling,
// "dynamodb:GetItem"; the statement's may hold wildcards) on resource (a
// token as above). An empty resource matches any.
func (g Grant) Allows(action, resource string) bool {
	actionOK := false
	for _, a := range g.Actions {
		if ok, _ := path.Match(strings.ToLower(a), strings.ToLower(action)); ok {
			actionOK = true
		}
	}
	return actionOK && (resource == "" || slices.Contains(g.Resources, resource))
}

// Allowed says whether a statement that depends on no condition allows
// action on resource.
func Allowed(gs []Grant, action, resource string) bool {
	for _, g := range gs {
		if g.Condition == "" && g.Allows(action, resource) {
			return true
		}
	}
	return false
}

// Grants reduces a function's Policies to grants. Inline documents and the
// SAM policy templates DynamoDBCrudPolicy, SQSSendMessagePolicy and
// SQSPollerPolicy are understood; anything else is an error.
func Grants(f Function) ([]Grant, error) {
	var gs []Grant
	for _, p := range f.Policies {
		m, ok := p.(map[string]any)
		if !ok {
			return nil, errors.New("managed policy " + toString(p) + ": not least privilege")
		}
		if stmts, ok := m["Statement"]; ok {
			for _, s := range asList(stmts) {
				g, skip, err := statementGrant(s)
				if err != nil {
					return nil, err
				}
				if !skip {
					gs = append(gs, g)
				}
			}
			continue
		}
		for name, args := range m {
			a, _ := args.(map[string]any)
			switch name {
			case "DynamoDBCrudPolicy":
				tbl, _ := RefTo(a["TableName"])
				gs = append(gs, Grant{
					Actions:   []string{"dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:Scan", "dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem", "dynamodb:BatchGetItem", "dynamodb:DescribeTable", "dynamodb:ConditionCheckItem"},
					Resources: []string{tbl, tbl + "/index/*"}})
			case "SQSSendMessagePolicy", "SQSPollerPolicy":
				q, attr, _ := GetAttOf(a["QueueName"])
				if attr != "QueueName" {
					return nil, errors.New(name + ": QueueName is not !GetAtt <queue>.QueueName")
				}
				acts := []string{"sqs:SendMessage*"}
				if name == "SQSPollerPolicy" {
					acts = []string{"sqs:ChangeMessageVisibility", "sqs:ChangeMessageVisibilityBatch", "sqs:DeleteMessage", "sqs:DeleteMessageBatch", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"}
				}
				gs = append(gs, Grant{Actions: acts, Resources: []string{q}})
			default:
				return nil, errors.New("unsupported policy " + name)
			}
		}
	}
	return gs, nil
}

func statementGrant(s any) (g Grant, skip bool, err error) {
	m, ok := s.(map[string]any)
	if !ok {
		return g, false, errors.New("statement " + toString(s) + " is not a map")
	}
	if ifArgs, ok := m["Fn::If"].([]any); ok && len(m) == 1 {
		// [condition, statement, !Ref AWS::NoValue]: a statement that may be absent.
		if len(ifArgs) != 3 {
			return g, false, errors.New("Fn::If needs 3 arguments")
		}
		if id, _ := RefTo(ifArgs[2]); id != "AWS::NoValue" {
			return g, false, errors.New("a conditional statement's else branch must be AWS::NoValue")
		}
		g, skip, err = statementGrant(ifArgs[1])
		cond, _ := ifArgs[0].(string)
		g.Condition = cond
		return g, skip, err
	}
	if m["Effect"] != "Allow" {
		return g, true, nil
	}
	for _, a := range asList(m["Action"]) {
		s, ok := a.(string)
		if !ok {
			return g, false, errors.New("Action " + toString(a) + " is not a string")
		}
		g.Actions = append(g.Actions, s)
	}
	for _, r := range asList(m["Resource"]) {
		g.Resources = append(g.Resources, resourceTokens(r)...)
	}
	return g, false, nil
}

var subArnIndexRE = regexp.MustCompile(`^\$\{([A-Za-z0-9]+)\.Arn\}(/.*)$`)

func resourceTokens(r any) []string {
	if s, ok := r.(string); ok {
		return []string{s}
	}
	if res, attr, ok := GetAttOf(r); ok && attr == "Arn" {
		return []string{res}
	}
	if id, ok := RefTo(r); ok {
		return []string{"ref:" + id}
	}
	m, _ := r.(map[string]any)
	if sub, ok := m["Fn::Sub"].(string); ok {
		if mm := subArnIndexRE.FindStringSubmatch(sub); mm != nil {
			return []string{mm[1] + mm[2]}
		}
		return []string{"sub:" + sub}
	}
	if ifArgs, ok := m["Fn::If"].([]any); ok && len(ifArgs) == 3 {
		return append(resourceTokens(ifArgs[1]), resourceTokens(ifArgs[2])...)
	}
	return []string{"unknown:" + toString(r)}
}

func toString(v any) string { return fmt.Sprint(v) }
