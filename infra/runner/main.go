// Command runner is `make dev`: the whole system on loopback from a clean
// slate, until Ctrl-C or SIGTERM stops every process it started.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/tunnels/tunnels/infra/devstack"
	"github.com/tunnels/tunnels/infra/localstack"
	"github.com/tunnels/tunnels/shared/telegram/telegramtest"
)

func main() {
	dir := flag.String("dir", "", "folder to write .tunnels/dev.json in (default: the repository root)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	slog.SetDefault(log)
	if err := run(log, *dir); err != nil {
		log.Error("make dev failed", "error", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger, dir string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := devstack.FromEnv()
	opts.Log = log
	// Telegram cannot be reached from here (nor reach this laptop): unless
	// TUNNELS_TELEGRAM_API points elsewhere, bots talk to a local fake of the
	// Bot API that takes any token of the right shape.
	fakeTelegram := ""
	if os.Getenv("TUNNELS_TELEGRAM_API") == "" {
		tg := telegramtest.New()
		tg.AcceptAnyToken()
		defer tg.Close()
		fakeTelegram = tg.URL()
		if opts.Env == nil {
			opts.Env = map[string]string{}
		}
		opts.Env["TUNNELS_TELEGRAM_API"] = fakeTelegram
		opts.EgressAllow = strings.Trim(opts.EgressAllow+","+strings.TrimPrefix(fakeTelegram, "http://"), ",")
	}
	log.Info("starting the emulators and the functions (the first run installs the emulators with npm)")
	sys, err := devstack.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer func() {
		log.Info("stopping")
		if err := sys.Close(); err != nil {
			log.Error("stop", "error", err)
		}
	}()
	if dir == "" {
		if dir, err = localstack.RepoRoot(); err != nil {
			return err
		}
	}
	path, err := sys.WriteDevFile(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "\nTunnels is running.\n  API:       %s  (Authorization: Bearer %s)\n  workspace: %s\n  DynamoDB:  %s\n  SQS:       %s\n  SES v2:    %s  (GET /store lists sent mail)\n  wrote %s\n",
		sys.APIURL, sys.APIKey, sys.WorkspaceID, sys.Endpoints.DynamoDB, sys.Endpoints.SQS, sys.Endpoints.SESv2, path)
	if fakeTelegram != "" {
		fmt.Fprintf(os.Stderr, "  Telegram:  %s  (a fake Bot API: any token 123:<30+ chars> is a bot; POST /fake/updates?token=... an Update to play a user, GET /fake/sent reads what the bot sent)\n", fakeTelegram)
	}
	fmt.Fprintf(os.Stderr, "Ctrl-C stops everything.\n\n")
	<-ctx.Done()
	return nil
}
