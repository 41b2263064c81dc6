package store

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tunnels/tunnels/shared/engine"
)

// A tunnel's counters (see engine/stats.go) live in statsShards items, each
// write going to one picked at random, so a broadcast into one tunnel spreads
// its writes; a read adds the shards up.
const statsShards = 8

func statsKey(ws, tunnel string, shard int) map[string]types.AttributeValue {
	return key("STATS#"+ws+"#"+tunnel+"#"+strconv.Itoa(shard), "STATS")
}

// subscriberShard is the shard of a subscriber's own counts (its open deals
// in a plan): always the same one, so a move of its deal finds the count.
func subscriberShard(sub string) int {
	h := fnv.New32a()
	h.Write([]byte(sub))
	return int(h.Sum32() % statsShards)
}

// recordedCounts answers how many subscribers each tunnel recorded, summed
// over its stats shards.
func (st *Store) recordedCounts(ctx context.Context, ws string, tunnels []string) (map[string]int64, error) {
	out := map[string]int64{}
	byPK := map[string]string{}
	var keys []map[string]types.AttributeValue
	for _, t := range tunnels {
		for i := range statsShards {
			k := statsKey(ws, t, i)
			byPK[k["pk"].(*types.AttributeValueMemberS).Value] = t
			keys = append(keys, k)
		}
	}
	err := st.batchGet(ctx, keys, "pk, recorded", nil, func(it map[string]types.AttributeValue) error {
		out[byPK[str(it, "pk")]] += num(it, "recorded")
		return nil
	})
	return out, err
}

// deleteStats removes a tunnel's stats shards (with the tunnel: a tunnel
// made again under the same id starts from zero).
func (st *Store) deleteStats(ctx context.Context, ws, tunnel string) error {
	for i := range statsShards {
		if _, err := st.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(st.table), Key: statsKey(ws, tunnel, i)}); err != nil {
			return err
		}
	}
	return nil
}

// AddStats adds counters to a tunnel's stats (one write).
func (st *Store) AddStats(ctx context.Context, ws, tunnel string, counters map[string]int64) error {
	var adds []string
	names := map[string]string{}
	vals := map[string]types.AttributeValue{}
	i := 0
	for k, v := range counters {
		if v == 0 {
			continue
		}
		names[fmt.Sprintf("#c%d", i)] = k
		vals[fmt.Sprintf(":c%d", i)] = n(v)
		adds = append(adds, fmt.Sprintf("#c%d :c%d", i, i))
		i++
	}
	if len(adds) == 0 {
		return nil
	}
	_, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: statsKey(ws, tunnel, rand.IntN(statsShards)),
		UpdateExpression:          aws.String("ADD " + strings.Join(adds, ", ")),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: vals,
	})
	return err
}

// TunnelStats answers a tunnel's counters, summed over the shards.
func (st *Store) TunnelStats(ctx context.Context, ws, tunnel string) (map[string]int64, error) {
	keys := make([]map[string]types.AttributeValue, statsShards)
	for i := range keys {
		keys[i] = statsKey(ws, tunnel, i)
	}
	sum := map[string]int64{}
	err := st.batchGet(ctx, keys, "", nil, func(it map[string]types.AttributeValue) error {
		for name, v := range it {
			if nv, ok := v.(*types.AttributeValueMemberN); ok && name != "pk" && name != "sk" {
				x, _ := strconv.ParseInt(nv.Value, 10, 64)
				sum[name] += x
			}
		}
		return nil
	})
	return sum, err
}

// EndRun implements engine.Store: the ended generations of a run are a number
// set beside it, so each is counted once, idle or superseded.
func (st *Store) EndRun(ctx context.Context, ws, sub, tunnel, channel string, gen int, superseded bool) (bool, error) {
	cond := "NOT contains(#ended, :g)"
	names := map[string]string{"#ended": "ended#" + engine.RunKey(tunnel, channel)}
	vals := map[string]types.AttributeValue{":g": n(int64(gen)), ":gs": &types.AttributeValueMemberNS{Value: []string{strconv.Itoa(gen)}}}
	expr := "ADD #ended :gs"
	if !superseded {
		cond += " AND #r.gen = :g AND #r.pending <= :zero"
		names["#r"] = runPrefix + engine.RunKey(tunnel, channel)
		names["#moved"] = movedPrefix + engine.RunKey(tunnel, channel)
		vals[":zero"] = n(0)
		expr += " REMOVE #moved" // an ended generation moves no more
	}
	_, err := st.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(st.table), Key: key(subPK(ws, sub), profileSK),
		UpdateExpression:          aws.String(expr),
		ConditionExpression:       aws.String("attribute_exists(pk) AND " + cond),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: vals,
	})
	if isConditionFailed(err) {
		return false, nil
	}
	return err == nil, err
}

// StatsBuffer gathers the counts of the steps an instance runs and writes
// each tunnel's sum in one write. With Every set, AfterBatch writes at most
// once per Every: a quiet instance writes after each batch, a busy one once
// per Every, so under load a tunnel's counters cost one write per instance
// per Every instead of one per batch. What waits is written by the next
// batch due, by Run (a process that keeps running between batches, as the
// local stack's), or at Shutdown (Lambda's SIGTERM).
type StatsBuffer struct {
	Store *Store
	// Every is the least time between two writes of AfterBatch (0: every
	// batch writes its counts).
	Every time.Duration
	mu    sync.Mutex
	m     map[[2]string]map[string]int64
	last  time.Time // the last write
}

// Count implements engine.StatsSink.
func (b *StatsBuffer) Count(ws, tunnel string, counters map[string]int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[[2]string]map[string]int64{}
	}
	k := [2]string{ws, tunnel}
	if b.m[k] == nil {
		b.m[k] = map[string]int64{}
	}
	for name, v := range counters {
		b.m[k][name] += v
	}
}

// AfterBatch writes the waiting counts when the last write is Every old (at
// once when Every is 0).
func (b *StatsBuffer) AfterBatch(ctx context.Context) error {
	b.mu.Lock()
	due := b.m != nil && time.Since(b.last) >= b.Every
	b.mu.Unlock()
	if !due {
		return nil
	}
	return b.Flush(ctx)
}

// Run writes what waits every Every (or second) until ctx ends, then once
// more: for a process that keeps running between batches.
func (b *StatsBuffer) Run(ctx context.Context) error {
	every := b.Every
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = b.Flush(fctx) // the stats are a view: a failed last write is not the host's failure
			return nil
		case <-t.C:
			_ = b.AfterBatch(ctx)
		}
	}
}

// Shutdown writes what waits, within the half second Lambda gives a
// process between SIGTERM and SIGKILL.
func (b *StatsBuffer) Shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 450*time.Millisecond)
	defer cancel()
	_ = b.Flush(ctx)
}

// Flush writes what was counted; counts that fail to write are dropped (the
// stats are a view: a step never waits for them, and a write retried after
// an unknown outcome could count twice).
func (b *StatsBuffer) Flush(ctx context.Context) error {
	b.mu.Lock()
	pending := b.m
	b.m = nil
	b.last = time.Now()
	b.mu.Unlock()
	var first error
	for k, c := range pending {
		if err := b.Store.AddStats(ctx, k[0], k[1], c); err != nil && first == nil {
			first = err
		}
	}
	return first
}
