package localstack

import (
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func TestPermissions(t *testing.T) {
	for _, c := range []struct {
		service, op string
		params      any
		want        []Permission
	}{
		{"DynamoDB", "GetItem", &dynamodb.GetItemInput{}, []Permission{{Action: "dynamodb:GetItem"}}},
		{"DynamoDB", "Query", &dynamodb.QueryInput{}, []Permission{{Action: "dynamodb:Query"}}},
		{"DynamoDB", "Query", &dynamodb.QueryInput{IndexName: aws.String("Inbox")}, []Permission{{Action: "dynamodb:Query", Index: true}}},
		{"DynamoDB", "TransactWriteItems", &dynamodb.TransactWriteItemsInput{TransactItems: []ddbtypes.TransactWriteItem{
			{Put: &ddbtypes.Put{}}, {Update: &ddbtypes.Update{}}, {ConditionCheck: &ddbtypes.ConditionCheck{}}, {Delete: &ddbtypes.Delete{}},
		}}, []Permission{{Action: "dynamodb:PutItem"}, {Action: "dynamodb:UpdateItem"}, {Action: "dynamodb:ConditionCheckItem"}, {Action: "dynamodb:DeleteItem"}}},
		{"DynamoDB", "TransactGetItems", &dynamodb.TransactGetItemsInput{}, []Permission{{Action: "dynamodb:GetItem"}}},
		{"SQS", "SendMessageBatch", nil, []Permission{{Action: "sqs:SendMessage"}}},
		{"SQS", "ChangeMessageVisibilityBatch", nil, []Permission{{Action: "sqs:ChangeMessageVisibility"}}},
		{"SQS", "ReceiveMessage", nil, []Permission{{Action: "sqs:ReceiveMessage"}}},
		{"SESv2", "SendEmail", nil, []Permission{{Action: "ses:SendEmail"}}},
	} {
		if got := Permissions(c.service, c.op, c.params); !slices.Equal(got, c.want) {
			t.Errorf("%s %s: %v, want %v", c.service, c.op, got, c.want)
		}
	}
}
