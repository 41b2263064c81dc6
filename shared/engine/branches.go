package engine

// condition takes the first branch whose rule holds for the subscriber, or
// else; the journey says which and, rule by rule, why.
func (p *Processor) condition(ac *ActionContext, claim Claim) (Outcome, []Outgoing) {
	b := ac.Block
	i, why := Choose(b, ac.Subscriber)
	detail := map[string]any{"why": toAny(why)}
	next := b.Else
	if i >= 0 {
		next = b.Branches[i].Next
		detail["branch"] = i
		if n := b.Branches[i].Name; n != "" {
			detail["name"] = n
		}
	} else {
		detail["branch"] = "else"
	}
	return Done(detail), Advance(ac.Tunnel, ac.Step, next, claim.StartedAt, nil)
}

// split sends the subscriber down its sticky weighted branch.
func (p *Processor) split(ac *ActionContext, claim Claim) (Outcome, []Outgoing) {
	s, b := ac.Step, ac.Block
	i := SplitBranch(b, s.WS, s.Sub, s.Tunnel)
	if i < 0 {
		return Failed("the split has no branch with a weight"), nil
	}
	total := 0
	for _, br := range b.Branches {
		total += max(br.Weight, 0)
	}
	detail := map[string]any{"branch": i, "weight": b.Branches[i].Weight, "total_weight": total}
	if n := b.Branches[i].Name; n != "" {
		detail["name"] = n
	}
	return Done(detail), Advance(ac.Tunnel, s, b.Branches[i].Next, claim.StartedAt, nil)
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
