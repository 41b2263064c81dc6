// Package config reads a function's configuration from its environment once,
// at init, and fails there rather than on the first request.
package config

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/tunnels/tunnels/shared/egress"
	"github.com/tunnels/tunnels/shared/engine"
)

// Config is everything a function is configured with.
type Config struct {
	Table string
	// Queues and DLQs by step kind (URLs).
	Queues map[engine.Kind]string
	DLQs   map[engine.Kind]string
	// EgressAllow: host:port pairs user-configured addresses may reach
	// although they are not public (TUNNELS_EGRESS_ALLOW).
	EgressAllow []string
	AdminToken  string
	SESIdentity string
	// MaxReceives is the queues' maxReceiveCount: the last attempt before the DLQ.
	MaxReceives int
	// MaxStepsWithoutWait bounds the steps a run takes without waiting
	// (TUNNELS_MAX_STEPS_WITHOUT_WAIT; default engine.DefaultMaxStepsWithoutWait).
	MaxStepsWithoutWait int
	// PublicURL is where the deployment's API is reached from the internet
	// (TUNNELS_PUBLIC_URL, the PublicUrl parameter): Telegram posts a bot's
	// updates there. The local runner sets its own address.
	PublicURL string
	// TelegramAPI is the Bot API's address (TUNNELS_TELEGRAM_API; empty:
	// https://api.telegram.org). Tests and make dev point it at the fake.
	TelegramAPI string
}

// Load reads the configuration through getenv (os.Getenv in a function; the
// local runner passes each function's environment from template.yaml).
func Load(getenv func(string) string) (Config, error) {
	c := Config{
		Table:       getenv("TUNNELS_TABLE"),
		Queues:      map[engine.Kind]string{},
		DLQs:        map[engine.Kind]string{},
		AdminToken:  getenv("TUNNELS_ADMIN_TOKEN"),
		SESIdentity: getenv("TUNNELS_SES_IDENTITY"),
		MaxReceives: 5,

		MaxStepsWithoutWait: engine.DefaultMaxStepsWithoutWait,
		PublicURL:           strings.TrimRight(getenv("TUNNELS_PUBLIC_URL"), "/"),
		TelegramAPI:         getenv("TUNNELS_TELEGRAM_API"),
	}
	if c.Table == "" {
		return Config{}, fmt.Errorf("TUNNELS_TABLE is not set")
	}
	for _, k := range engine.Kinds {
		name := strings.ToUpper(string(k))
		c.Queues[k] = getenv("TUNNELS_QUEUE_" + name)
		c.DLQs[k] = getenv("TUNNELS_DLQ_" + name)
		if c.Queues[k] == "" {
			return Config{}, fmt.Errorf("TUNNELS_QUEUE_%s is not set", name)
		}
	}
	allow, err := egress.ParseAllow(getenv("TUNNELS_EGRESS_ALLOW"))
	if err != nil {
		return Config{}, fmt.Errorf("TUNNELS_EGRESS_ALLOW: %w", err)
	}
	c.EgressAllow = allow
	if v := getenv("TUNNELS_MAX_RECEIVES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return Config{}, fmt.Errorf("TUNNELS_MAX_RECEIVES: %q is not a positive number", v)
		}
		c.MaxReceives = n
	}
	if v := getenv("TUNNELS_MAX_STEPS_WITHOUT_WAIT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return Config{}, fmt.Errorf("TUNNELS_MAX_STEPS_WITHOUT_WAIT: %q is not a positive number", v)
		}
		c.MaxStepsWithoutWait = n
	}
	return c, nil
}
