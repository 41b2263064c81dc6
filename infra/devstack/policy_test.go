package devstack_test

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/tunnels/tunnels/infra/localstack"
	"github.com/tunnels/tunnels/shared/samtemplate"
)

// calls counts every AWS call of the shared system's functions while the
// package's tests run (TestMain checks them against the template's policies).
var calls = &localstack.CallCounter{Permits: true}

// unauthorizedCalls lists what the functions' calls needed that their
// policies in template.yaml do not allow: the emulators take any call, AWS
// would refuse these with AccessDenied. DynamoDB calls are checked against
// the statements on the table (Table) or on its indexes (Table/index/*);
// others by action alone. A statement under a condition (Fn::If) counts: the
// tests play a deployment where it holds (an SES identity is set).
func unauthorizedCalls(needed map[string]map[localstack.Permission]int64) ([]string, error) {
	root, err := localstack.RepoRoot()
	if err != nil {
		return nil, err
	}
	tpl, err := samtemplate.Open(filepath.Join(root, "template.yaml"))
	if err != nil {
		return nil, err
	}
	var out []string
	for label, perms := range needed {
		f, ok := tpl.Function(label)
		if !ok {
			continue // the local stack's own calls (the event source mappings)
		}
		grants, err := samtemplate.Grants(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		for p, n := range perms {
			resource := ""
			if strings.HasPrefix(p.Action, "dynamodb:") {
				resource = "Table"
				if p.Index {
					resource = "Table/index/*"
				}
			}
			allowed := false
			for _, g := range grants {
				allowed = allowed || g.Allows(p.Action, resource)
			}
			if !allowed {
				out = append(out, fmt.Sprintf("%s needed %s on %q for %d calls: its policy does not allow it", label, p.Action, resource, n))
			}
		}
	}
	sort.Strings(out)
	return out, nil
}
