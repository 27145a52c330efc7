// Command nestbot runs the nestbot service and its small client tools.
// It only wires packages together; the behaviour lives in bot, rooms and
// nostrx.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip19"
	"github.com/spf13/cobra"

	"github.com/nestbot/nestbot/bot"
	"github.com/nestbot/nestbot/internal/config"
	"github.com/nestbot/nestbot/internal/relay"
	"github.com/nestbot/nestbot/nostrx"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

func main() {
	if err := rootCmd().Execute(); err != nil {
		var ce *codeError
		if errors.As(err, &ce) {
			fmt.Fprintln(os.Stderr, "nestbot:", ce.msg)
			os.Exit(3)
		}
		fmt.Fprintln(os.Stderr, "nestbot:", err)
		os.Exit(1)
	}
}

// codeError is a refusal from the bot, printed with its code; exit status 3
// tells scripts the bot answered but said no.
type codeError struct{ msg string }

func (e *codeError) Error() string { return e.msg }

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "nestbot",
		Short:         "Restarts Nostr audio rooms (nests) on request over relays",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var configPath string
	root.PersistentFlags().StringVar(&configPath, "config", "", "path to config.yaml (default: ./config.yaml when present)")
	load := func() (config.Config, error) {
		path := configPath
		if path == "" {
			if _, err := os.Stat("config.yaml"); err == nil {
				path = "config.yaml"
			}
		}
		return config.Load(path)
	}
	root.AddCommand(runCmd(load), keygenCmd(), restartCmd(load), versionCmd())
	return root
}

func runCmd(load func() (config.Config, error)) *cobra.Command {
	var cpuProfile, heapProfile string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the service until SIGINT or SIGTERM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			log := bot.NewLogger(os.Stderr, cfg.Log)
			bot.RouteLibraryLogs(log)
			for _, v := range config.UnknownEnv(os.Environ()) {
				log.Warn("environment variable sets no configuration key; ignored", "var", v)
			}
			svc, err := bot.New(cfg, log)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			err = profiled(cpuProfile, heapProfile, func() error { return svc.Run(ctx) })
			runtime.KeepAlive(svc) // its caches are what a heap profile is about
			return err
		},
	}
	// For nestbench (-cpuprofile): the bot's own work under the bench's load.
	cmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	cmd.Flags().StringVar(&heapProfile, "heapprofile", "", "write a heap profile to this file when the run ends (after a GC: what the bot still held)")
	_ = cmd.Flags().MarkHidden("cpuprofile")
	_ = cmd.Flags().MarkHidden("heapprofile")
	return cmd
}

// profiled runs f under a CPU profile written to cpu, and writes a heap
// profile to heap once f returned; either may be "" for none.
func profiled(cpu, heap string, f func() error) error {
	if cpu != "" {
		out, err := os.Create(cpu)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer out.Close()
		if err := pprof.StartCPUProfile(out); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	err := f()
	if heap != "" {
		runtime.GC()
		out, ferr := os.Create(heap)
		if ferr != nil {
			return errors.Join(err, fmt.Errorf("heap profile: %w", ferr))
		}
		defer out.Close()
		if werr := pprof.WriteHeapProfile(out); werr != nil {
			return errors.Join(err, fmt.Errorf("heap profile: %w", werr))
		}
	}
	return err
}

func keygenCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "keygen",
		Short: "Print a new key pair (nsec and npub) for the bot or a client",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sk := nostr.GeneratePrivateKey()
			pk, err := nostr.GetPublicKey(sk)
			if err != nil {
				return err
			}
			nsec, _ := nip19.EncodePrivateKey(sk)
			npub, _ := nip19.EncodePublicKey(pk)
			fmt.Fprintf(cmd.OutOrStdout(), "nsec: %s\nnpub: %s\nhex pubkey: %s\n", nsec, npub, pk)
			return nil
		},
	}
}

func restartCmd(load func() (config.Config, error)) *cobra.Command {
	var key, botKey, reason, hint, action string
	var relays []string
	var noAdopt bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "restart <room>",
		Short: "Ask a nestbot to restart a room (or, with --action status, for its status) and print its decrypted answer as JSON",
		Long: "The room may be a naddr, nostr:naddr, a web link containing one, or 30312:<hex>:<d>.\n" +
			"The key signs the request (--key, or NESTBOT_CLIENT_KEY); it must be the room's host or an admin.\n" +
			"The bot and its relays come from --config (nostr.secret_key, nostr.relays) unless --bot and --relay are given.\n" +
			"--action status asks whether the room is live, how many are in it and whether its record exists; it changes nothing.\n" +
			"A room recreated under a new ID is adopted: the answer's template is signed with your key and published\n" +
			"(stderr says \"adopted: …\" with the room's new address); --no-adopt leaves it the bot's.\n" +
			"Exit status: 0 answered with a result, 3 answered with an error code, 1 anything else\n" +
			"(no answer within --timeout, a bad flag, or an adoption no relay accepted).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			room, err := nostrx.ParseRoomAddress(args[0])
			if err != nil {
				return err
			}
			if key == "" {
				key = os.Getenv("NESTBOT_CLIENT_KEY")
			}
			sk, err := decodeSecret(key)
			if err != nil {
				return fmt.Errorf("--key: %w", err)
			}
			signer, err := nostrx.NewSigner(sk, 1)
			if err != nil {
				return fmt.Errorf("--key: %w", err)
			}
			var botPK string
			var requestKind, responseKind = nostrx.DefaultRequestKind, nostrx.DefaultResponseKind
			if botKey == "" || len(relays) == 0 {
				cfg, err := load()
				if err != nil {
					return fmt.Errorf("--bot and --relay not given, and the config did not load: %w", err)
				}
				if botKey == "" {
					botPK = cfg.PublicKey()
				}
				if len(relays) == 0 {
					relays = cfg.Nostr.Relays
				}
				requestKind, responseKind = cfg.Nostr.RequestKind, cfg.Nostr.ResponseKind
			}
			if botKey != "" {
				if botPK, err = nostrx.DecodePubkey(botKey); err != nil {
					return fmt.Errorf("--bot: %w", err)
				}
			}
			for _, r := range relays {
				if !nostrx.ValidRelayURL(r) {
					return fmt.Errorf("--relay %q: not a ws:// or wss:// URL", r)
				}
			}
			if hint == "" && len(room.Relays) > 0 {
				hint = room.Relays[0]
			}
			if hint != "" && !nostrx.ValidRelayURL(hint) {
				return fmt.Errorf("--hint %q: not a ws:// or wss:// URL", hint)
			}
			if action != nostrx.ActionRestart && action != nostrx.ActionStatus {
				return fmt.Errorf("--action %q: want restart or status", action)
			}
			if timeout <= 0 {
				return fmt.Errorf("--timeout %s: must be positive, like 30s", timeout)
			}
			if len(reason) > nostrx.MaxReasonBytes {
				return fmt.Errorf("--reason: at most %d bytes", nostrx.MaxReasonBytes)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			c := &bot.Client{Signer: signer, Bot: botPK, Relays: relays, RequestKind: requestKind, ResponseKind: responseKind}
			ex, err := c.Send(ctx, room, action, hint, reason)
			if err != nil {
				return err
			}
			out := json.NewEncoder(cmd.OutOrStdout())
			out.SetIndent("", "  ")
			if err := out.Encode(ex.Payload); err != nil {
				return err
			}
			if ex.Payload.Error != nil {
				return &codeError{fmt.Sprintf("%s: %s", ex.Payload.Error.Code, ex.Payload.Error.Message)}
			}
			if !noAdopt && action == nostrx.ActionRestart {
				return adopt(ctx, cmd, signer, ex.Payload, relays)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&noAdopt, "no-adopt", false, "do not sign and publish the answer's template (a room recreated under a new ID stays the bot's until you do)")
	cmd.Flags().StringVar(&key, "key", "", "requester's secret key (nsec or hex); default $NESTBOT_CLIENT_KEY")
	cmd.Flags().StringVar(&botKey, "bot", "", "the bot's npub or hex pubkey; default: the bot of --config")
	cmd.Flags().StringSliceVar(&relays, "relay", nil, "relay to use (repeatable); default: nostr.relays of --config")
	cmd.Flags().StringVar(&hint, "hint", "", "relay hint for the room's event (default: the naddr's first relay)")
	cmd.Flags().StringVar(&reason, "reason", "", "free-text reason sent with the request")
	cmd.Flags().StringVar(&action, "action", nostrx.ActionRestart, "restart or status")
	cmd.Flags().DurationVar(&timeout, "timeout", bot.DefaultClientTimeout, "how long to wait for the answer")
	return cmd
}

// adopt takes over a room the bot recreated under a new ID (issue 12):
// it signs the answer's template with the requester's key and publishes it
// to relays and the room's own relays, so the room's event is the
// requester's to update. The bot sees it and hands the room over. A
// result without a template (same ID, or too large to carry one) needs
// nothing. The outcome goes to stderr; stdout keeps the answer alone.
func adopt(ctx context.Context, cmd *cobra.Command, signer *nostrx.Signer, p nostrx.Payload, relays []string) error {
	var res nostrx.RestartResult
	if err := json.Unmarshal(p.Result, &res); err != nil || res.Template == nil {
		if err == nil && res.IsNewRoom && res.Event != nil {
			fmt.Fprintln(cmd.ErrOrStderr(), "no template in the answer: nothing adopted")
		}
		return nil
	}
	ev := nostr.Event{Kind: res.Template.Kind, CreatedAt: nostr.Now(), Tags: res.Template.Tags, Content: res.Template.Content}
	if ev.Kind != nostrx.KindRoom || ev.Tags.GetD() != res.RoomID {
		return fmt.Errorf("template: want a kind %d event with d %q", nostrx.KindRoom, res.RoomID)
	}
	if err := signer.Sign(&ev); err != nil {
		return fmt.Errorf("sign template: %w", err)
	}
	targets := slices.Clone(relays)
	if t := ev.Tags.Find("relays"); t != nil {
		for _, r := range firstRelays(t[1:], nostrx.MaxRoomRelays) {
			if nostrx.ValidRelayURL(r) && !slices.Contains(targets, r) {
				targets = append(targets, r)
			}
		}
	}
	accepted := 0
	var lastErr error
	for _, url := range targets {
		if err := publishOnce(ctx, url, ev); err != nil {
			lastErr = err
			continue
		}
		accepted++
	}
	if accepted == 0 {
		return fmt.Errorf("adopt: no relay accepted your room event: %w", lastErr)
	}
	c := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: ev.PubKey, D: ev.Tags.GetD()}
	fmt.Fprintf(cmd.ErrOrStderr(), "adopted: your room event %s is on %d relay(s); the room's address is now %s\n",
		ev.ID, accepted, c.Naddr(firstRelays(targets, 3)...))
	return nil
}

func firstRelays(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// publishOnce publishes ev to one relay and waits for its OK. The relay
// may be one the room event's author named (its relays tag): it goes
// through internal/relay, whose reader cannot panic on what a relay sends;
// go-nostr's Relay crashed the command on `["EVENT","x` (issue 9, item 2).
func publishOnce(ctx context.Context, url string, ev nostr.Event) error {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pool := relay.NewPool(relay.Options{Trusted: []string{url}})
	defer pool.Close()
	if res := pool.Publish(pctx, url, &ev); !res.OK() {
		return fmt.Errorf("%s: %s: %s", res.URL, res.Class, relay.Excerpt(res.Reason, 200))
	}
	return nil
}

// decodeSecret reads --key with the one secret-key rule (nsec1… or hex,
// a valid secp256k1 key).
func decodeSecret(s string) (string, error) {
	if strings.TrimSpace(s) == "" {
		return "", errors.New("a secret key is required")
	}
	return nostrx.DecodeSecretKey(s)
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			v := version
			if v == "" {
				if bi, ok := debug.ReadBuildInfo(); ok {
					v = bi.Main.Version
					for _, s := range bi.Settings {
						if s.Key == "vcs.revision" && len(s.Value) >= 12 {
							v += " (" + s.Value[:12] + ")"
						}
					}
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "nestbot %s\n", v)
		},
	}
}
