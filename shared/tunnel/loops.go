package tunnel

import (
	"fmt"
	"strconv"
	"strings"
)

// MinWaitSeconds is the shortest delay that counts as the run waiting. A loop
// that passes such a delay is a drip (one round per wait); a loop without one
// spins as fast as the queues deliver. The engine counts the steps run since the
// last wait and fails the step past its bound (see engine.Processor); saving
// refuses the loops it can see.
const MinWaitSeconds = 60

// Waits reports whether a run that reaches block b waits there long enough to
// reset the engine's count of steps without a wait.
// A message that waits for the subscriber's answer waits too: a person, not
// the queue, sets the pace.
func (b *Block) Waits() bool {
	return b.Type == BlockDelay && (b.Seconds >= MinWaitSeconds || b.Until != nil) || b.WaitsForSubscriber()
}

// Node is one block of one tunnel: a place a run can be.
type Node struct {
	Tunnel string
	Block  string
}

func (n Node) String() string { return n.Tunnel + "/" + n.Block }

// Loader gives the definition of a tunnel of the workspace, or nil when there
// is none.
type Loader func(id string) *Tunnel

// Steps returns where a run goes from node n without waiting: the block's
// successors in its tunnel and the blocks its START actions begin in other
// tunnels (or its own). A block that waits has none: what follows it comes
// after the wait.
func Steps(n Node, load Loader) []Node {
	t := load(n.Tunnel)
	if t == nil {
		return nil
	}
	b, ok := t.Block(n.Block)
	if !ok || b.Waits() {
		return nil
	}
	var out []Node
	for _, id := range b.Successors() {
		if _, ok := t.Block(id); ok {
			out = append(out, Node{n.Tunnel, id})
		}
	}
	for _, a := range b.Actions {
		if a.Type != ActionStart || a.Tunnel == "" {
			continue
		}
		target := load(a.Tunnel)
		if target == nil {
			continue
		}
		block := a.Block
		if block == "" {
			block = target.Entry
		}
		if _, ok := target.Block(block); ok {
			out = append(out, Node{a.Tunnel, block})
		}
	}
	return out
}

// maxLoopSearch bounds how many nodes a loop search visits: tunnels have at
// most MaxBlocks blocks, and a workspace's START graph is searched once per save.
const maxLoopSearch = 20000

// PathWithoutWait finds the shortest way from one of the nodes in from to the
// node to that passes no wait, as the list of nodes walked (from's node first,
// to last); nil when there is none. It follows Steps.
func PathWithoutWait(from []Node, to Node, load Loader) []Node {
	parent := map[Node]Node{}
	seen := map[Node]bool{}
	var queue []Node
	for _, n := range from {
		if !seen[n] {
			seen[n] = true
			queue = append(queue, n)
		}
	}
	for len(queue) > 0 && len(seen) <= maxLoopSearch {
		n := queue[0]
		queue = queue[1:]
		if n == to {
			path := []Node{n}
			for {
				p, ok := parent[path[0]]
				if !ok {
					return path
				}
				path = append([]Node{p}, path...)
			}
		}
		for _, m := range Steps(n, load) {
			if !seen[m] {
				seen[m] = true
				parent[m] = n
				queue = append(queue, m)
			}
		}
	}
	return nil
}

// LoopThrough finds a loop without a wait that passes node n: the nodes from
// n round to n again, or nil.
func LoopThrough(n Node, load Loader) []Node {
	path := PathWithoutWait(Steps(n, load), n, load)
	if path == nil {
		return nil
	}
	return append([]Node{n}, path...)
}

// FormatLoop writes a loop as `"a"/"x" -> "b"/"y" -> "a"/"x"`.
func FormatLoop(loop []Node) string {
	parts := make([]string, len(loop))
	for i, n := range loop {
		parts[i] = strconv.Quote(n.Tunnel) + "/" + strconv.Quote(n.Block)
	}
	return strings.Join(parts, " -> ")
}

// StartLoops reports the START actions of tunnel t, about to be saved under id,
// that close a loop through other tunnels with no wait on the way: the run would
// go round the tunnels forever. saved gives the workspace's other tunnels as
// they are stored (the tunnel being saved is t whatever saved says). A loop
// inside t alone is Validate's to report. Every such START is reported, with
// the loop it closes.
func StartLoops(id string, t *Tunnel, saved Loader) []FieldError {
	load := func(tid string) *Tunnel {
		if tid == id {
			return t
		}
		return saved(tid)
	}
	var errs []FieldError
	for i := range t.Blocks {
		b := &t.Blocks[i]
		if b.Type != BlockAction {
			continue
		}
		for k, a := range b.Actions {
			if a.Type != ActionStart || a.Tunnel == "" || a.Tunnel == id {
				continue
			}
			target := load(a.Tunnel)
			if target == nil {
				continue // Validate reports an unknown tunnel
			}
			block := a.Block
			if block == "" {
				block = target.Entry
			}
			here := Node{id, b.ID}
			path := PathWithoutWait([]Node{{a.Tunnel, block}}, here, load)
			if path == nil {
				continue
			}
			loop := append([]Node{here}, path...)
			errs = append(errs, FieldError{
				Pointer: "/blocks/" + strconv.Itoa(i) + "/actions/" + strconv.Itoa(k) + "/tunnel",
				Detail: fmt.Sprintf("this START closes a loop across tunnels with no delay of at least %d seconds (%s), "+
					"which would repeat forever; put such a delay in it", MinWaitSeconds, FormatLoop(loop)),
			})
		}
	}
	return errs
}
