package localstack

import (
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// Permission is what IAM checks of one AWS call: an action ("dynamodb:Query")
// and, for DynamoDB, whether the call reads an index (whose ARN, the table's
// followed by /index/<name>, a policy must name apart).
type Permission struct {
	Action string
	Index  bool
}

// Permissions answers what IAM authorizes a call by, from the SDK's service
// id, operation and input: a batch SQS call by its single-message action, a
// DynamoDB transaction by each of its items' actions.
func Permissions(service, operation string, params any) []Permission {
	switch service {
	case "DynamoDB":
		switch v := params.(type) {
		case *dynamodb.QueryInput:
			return []Permission{{Action: "dynamodb:Query", Index: v.IndexName != nil}}
		case *dynamodb.ScanInput:
			return []Permission{{Action: "dynamodb:Scan", Index: v.IndexName != nil}}
		case *dynamodb.TransactWriteItemsInput:
			var ps []Permission
			for _, it := range v.TransactItems {
				switch {
				case it.Put != nil:
					ps = append(ps, Permission{Action: "dynamodb:PutItem"})
				case it.Update != nil:
					ps = append(ps, Permission{Action: "dynamodb:UpdateItem"})
				case it.Delete != nil:
					ps = append(ps, Permission{Action: "dynamodb:DeleteItem"})
				case it.ConditionCheck != nil:
					ps = append(ps, Permission{Action: "dynamodb:ConditionCheckItem"})
				}
			}
			return ps
		case *dynamodb.TransactGetItemsInput:
			return []Permission{{Action: "dynamodb:GetItem"}}
		}
		return []Permission{{Action: "dynamodb:" + operation}}
	case "SQS":
		return []Permission{{Action: "sqs:" + strings.TrimSuffix(operation, "Batch")}}
	case "SESv2":
		return []Permission{{Action: "ses:" + operation}}
	}
	return []Permission{{Action: strings.ToLower(service) + ":" + operation}}
}
