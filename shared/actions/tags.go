// Package actions holds what each action of an action block does, one file
// per family: tags.go for add_tags and remove_tags, and so on. The flow
// actions START and STOP live in the engine, because they steer runs.
package actions

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/tunnels/tunnels/shared/engine"
)

// TagStore changes a subscriber's tags atomically.
type TagStore interface {
	AddTags(ctx context.Context, ws, sub string, tags []string) error
	RemoveTags(ctx context.Context, ws, sub string, tags []string) error
	// TagIDs answers the tags the workspace's catalog holds now.
	TagIDs(ctx context.Context, ws string) (map[string]bool, error)
}

// Tags runs add_tags and remove_tags.
func Tags(st TagStore) map[string]engine.ActionFunc {
	return map[string]engine.ActionFunc{
		"add_tags": func(ctx context.Context, ac *engine.ActionContext) (engine.Outcome, error) {
			return changeTags(ctx, st, ac, true)
		},
		"remove_tags": func(ctx context.Context, ac *engine.ActionContext) (engine.Outcome, error) {
			return changeTags(ctx, st, ac, false)
		},
	}
}

func changeTags(ctx context.Context, st TagStore, ac *engine.ActionContext, add bool) (engine.Outcome, error) {
	s, tags := ac.Step, ac.Action.Tags
	known, err := st.TagIDs(ctx, s.WS)
	if err != nil {
		return engine.Outcome{}, fmt.Errorf("read tags: %w", err)
	}
	var missing []string
	for _, t := range tags {
		if !known[t] {
			missing = append(missing, fmt.Sprintf("%q", t))
		}
	}
	if len(missing) > 0 {
		// A tag deleted after the tunnel was saved: change nothing.
		return engine.Skipped("tag " + strings.Join(missing, ", ") + " no longer exists"), nil
	}
	var changed []string
	for _, t := range tags {
		if slices.Contains(ac.Subscriber.Tags, t) != add {
			changed = append(changed, t)
		}
	}
	if add {
		err = st.AddTags(ctx, s.WS, s.Sub, tags)
	} else {
		err = st.RemoveTags(ctx, s.WS, s.Sub, tags)
	}
	if err != nil {
		return engine.Outcome{}, fmt.Errorf("change tags: %w", err)
	}
	key := "removed"
	if add {
		key = "added"
	}
	if changed == nil {
		changed = []string{}
	}
	return engine.Done(map[string]any{"tags": tags, key: changed}), nil
}
