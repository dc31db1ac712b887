package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/approvebot/approvebot/bot"
	"github.com/approvebot/approvebot/bot/jsonhttp"
	"github.com/approvebot/approvebot/cmd/approvebot/internal/logwriter"
	"github.com/approvebot/approvebot/display"
	"github.com/approvebot/approvebot/policy"
	"github.com/approvebot/approvebot/signing"
	"github.com/approvebot/approvebot/store"
)

func loadConfig(fs *flag.FlagSet, args []string, getenv func(string) (string, bool), stderr io.Writer) (*policy.Config, []string, error) {
	path := fs.String("config", "approvebot.yaml", "configuration file")
	if err := parseFlags(fs, args, stderr); err != nil {
		return nil, nil, err
	}
	cfg, err := policy.Load(*path, getenv, platforms().Platforms())
	if err != nil {
		return nil, nil, err
	}
	return cfg, fs.Args(), nil
}

func cmdCheck(args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) error {
	cfg, _, err := loadConfig(flag.NewFlagSet("check", flag.ContinueOnError), args, getenv, stderr)
	if err != nil {
		return err
	}
	if problems := weakSecrets(cfg); len(problems) > 0 {
		return checkProblems(problems)
	}
	for _, w := range setupWarnings(cfg) {
		fmt.Fprintln(stderr, "warning:", display.Terminal(w))
	}
	fmt.Fprint(stdout, display.Terminal(cfg.Summary()))
	fmt.Fprintln(stdout, "config OK")
	return nil
}

// service is a running approvebot, as serve builds it.
type service struct {
	cfg      *policy.Config
	store    *store.Bolt
	engine   *bot.Engine
	api      *bot.Server
	http     *http.Server
	listener net.Listener
	scheme   string // http, or https when approvebot serves TLS itself
	log      *slog.Logger

	// reloadMu serialises reloads; cfg is replaced by each one.
	reloadMu sync.Mutex

	// plugins are the platforms the service is built with, running the
	// running sides of those the configuration names.
	plugins bot.Plugins
	running []bot.Running

	// The connections platforms keep themselves (bot.Runner): stopRunners
	// ends them, ran reports each one's end, and runners counts them.
	stopRunners context.CancelFunc
	ran         chan runnerEnd
	runners     int
}

// runnerEnd is how a platform's connection ended.
type runnerEnd struct {
	runner bot.Runner
	err    error
}

// cmdServe runs the service on clock: every deadline, reminder, retry and
// pacing timer of the engine and the platforms runs on it.
func cmdServe(ctx context.Context, clock bot.Clock, args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfg, _, err := loadConfig(fs, args, getenv, stderr)
	if err != nil {
		return err
	}
	logs := newLogStream(stderr)
	defer logs.Close()
	log := newLogger(logs, slog.LevelInfo)
	for _, w := range weakSecrets(cfg) {
		log.Warn("weak secret: approvebot check refuses this config", "problem", w)
	}
	rl := &reloader{path: fs.Lookup("config").Value.String(), getenv: getenv}
	svc, err := build(ctx, cfg, log, rl, clock)
	if err != nil {
		return err
	}
	// SIGHUP reloads the configuration file, as approvebot reload does.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if _, err := rl.reload(); err != nil {
					log.Error("configuration not reloaded; the running one is kept", "err", err)
				}
			}
		}
	}()
	// The address goes to stdout so scripts (and tests) can find the port
	// when listen ends in :0.
	fmt.Fprintf(stdout, "approvebot listening on %s://%s\n", svc.scheme, svc.listener.Addr())
	log.Info("listening", "url", svc.scheme+"://"+svc.listener.Addr().String())
	return svc.serve(ctx)
}

func build(ctx context.Context, cfg *policy.Config, log *slog.Logger, rl *reloader, clock bot.Clock) (*service, error) {
	return buildWith(ctx, cfg, platforms(), log, rl, clock, nil)
}

// buildWith builds the service with plugins, the platforms cfg was read
// with; demo, set by approvebot demo alone, offers those people as the
// sign-in of a platform that has one (the web inbox) in place of an
// identity provider. serve never passes it, whatever the configuration
// says.
func buildWith(ctx context.Context, cfg *policy.Config, plugins bot.Plugins, log *slog.Logger, rl *reloader, clock bot.Clock, demo []bot.DemoPerson) (*service, error) {
	st, err := store.Open(cfg.Store.Path, store.Options{MaxSize: cfg.Store.MaxSize})
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	svc := &service{cfg: cfg, store: st, log: log, scheme: "http", plugins: plugins}
	if rl != nil {
		rl.svc = svc
	}
	fail := func(err error) (*service, error) {
		svc.closePlatforms()
		st.Close()
		return nil, err
	}
	// Every platform starts from its own section (platforms.go): what
	// it reads from the file, whom it lets decide, where it posts, its
	// routes, its reloadable secrets and any connection it keeps are its
	// package's alone. Each keeps its data in a bucket of its own.
	data := func(name string) store.KV { return st.PlatformData(name) }
	running, err := plugins.Start(cfg, bot.Env{Logger: log, Clock: clock, Demo: demo}, data)
	if err != nil {
		return fail(err)
	}
	startLog := plugins.StartLog(running)
	svc.running = slices.DeleteFunc(running, func(r bot.Running) bool { return r == nil })
	var platforms []bot.Platform
	var inboxURL string
	for _, r := range svc.running {
		platforms = append(platforms, r.Platform())
		if rp, ok := r.(bot.RequestPages); ok && inboxURL == "" && cfg.PublicURL != "" {
			inboxURL = strings.TrimSuffix(cfg.PublicURL, "/") + rp.RequestPath()
		}
	}
	key, err := signing.LoadOrCreateKey(cfg.Signing.KeyFile)
	if err != nil {
		return fail(fmt.Errorf("signing key: %w", err))
	}
	signer := signing.NewSigner(key, cfg.Signing.Issuer)

	var checkpoints *bot.CheckpointConfig
	if cfg.Audit.Checkpoints() {
		checkpoints = &bot.CheckpointConfig{File: cfg.Audit.CheckpointFile, Log: cfg.Audit.CheckpointLog, Interval: cfg.Audit.CheckpointInterval}
		warnSameVolume(log, cfg)
	}
	svc.engine, err = bot.New(bot.Config{Policy: cfg, Store: st, Platforms: platforms, Logger: log, Signer: signer, Checkpoints: checkpoints,
		Retention: cfg.Store.Retention, InboxURL: inboxURL, Clock: clock})
	if err != nil {
		return fail(err)
	}
	handlers := map[string]http.Handler{}
	// Platform callbacks are unauthenticated until their body is read.
	guard := bot.NewCallbackGuard(cfg.Server.CallbackReadTimeout, cfg.Server.CallbackMemory, log)
	mount := func(pattern string, h http.Handler) error {
		if _, taken := handlers[pattern]; taken {
			return fmt.Errorf("two platforms serve %s", pattern)
		}
		handlers[pattern] = h
		return nil
	}
	for _, r := range svc.running {
		routes := r.Routes(svc.engine)
		for p, h := range routes.Callbacks {
			if err := mount(p, guard.Wrap(h, maxCallbackBody)); err != nil {
				return fail(err)
			}
		}
		for p, h := range routes.Pages {
			if err := mount(p, h); err != nil {
				return fail(err)
			}
		}
	}
	if cfg.Admin.Token != "" {
		extra := map[string]http.HandlerFunc{
			// What /readyz keeps to itself.
			"GET /admin/ready": func(w http.ResponseWriter, r *http.Request) {
				ok, reason := svc.api.Readiness()
				status := http.StatusOK
				if !ok {
					status = http.StatusServiceUnavailable
				}
				jsonhttp.Write(w, status, map[string]any{"ready": ok, "reason": reason})
			},
		}
		if rl != nil {
			extra["POST /admin/reload"] = rl.reloadHandler
		}
		for _, r := range svc.running {
			ar, ok := r.(bot.AdminRouter)
			if !ok {
				continue
			}
			for p, h := range ar.AdminRoutes() {
				if _, taken := extra[p]; taken {
					return fail(fmt.Errorf("two routes claim %s", p))
				}
				extra[p] = h
			}
		}
		adminToken := func() string { return svc.config().Admin.Token }
		admin, err := bot.AdminHandlers(st, adminToken, extra)
		if err != nil {
			return fail(err)
		}
		for p, h := range admin {
			if _, taken := handlers[p]; taken {
				return fail(fmt.Errorf("route %s is one of the admin API's own", p))
			}
			handlers[p] = h
		}
	}
	svc.api, err = bot.NewServer(bot.ServerConfig{
		Engine:   svc.engine,
		Signer:   signer,
		Handlers: handlers,
		Ready:    newPlatformReadiness(ctx, clock, platforms, log).ready,
		Logger:   log,
	})
	if err != nil {
		return fail(err)
	}
	var tlsConfig *tls.Config
	if cfg.TLS.CertFile != "" {
		certs, err := newCertReloader(cfg.TLS.CertFile, cfg.TLS.KeyFile, log)
		if err != nil {
			return fail(err)
		}
		tlsConfig = certs.config()
	}
	inner, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fail(fmt.Errorf("listen on %s: %w", cfg.Listen, err))
	}
	// The cap counts TCP connections, under TLS: a handshake left half
	// done holds a slot like headers left half sent. A connection that has
	// taken half its header time without a request may give its slot to a
	// new one.
	limited := bot.LimitListener(inner, cfg.Server.MaxConnections, cfg.Server.MaxHeld, cfg.Server.HeaderTimeout/2)
	svc.listener = limited
	if tlsConfig != nil {
		svc.listener = tls.NewListener(limited, tlsConfig)
		svc.scheme = "https"
	}
	if err := svc.engine.RegisterMetrics(append(limited.Collectors(), guard.Collectors()...)...); err != nil {
		inner.Close()
		return fail(err)
	}
	warnDescriptors(cfg.Server, log)
	svc.http = &http.Server{
		Handler:           svc.api,
		ReadHeaderTimeout: cfg.Server.HeaderTimeout,
		MaxHeaderBytes:    cfg.Server.MaxHeaderBytes,
		ConnState:         limited.ConnState,
		ConnContext:       limited.ConnContext,
		ReadTimeout:       30 * time.Second,
		// No WriteTimeout: held requests answer when a human decides, up to
		// the request's deadline, which the engine enforces.
		IdleTimeout: 120 * time.Second,
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// The outbox outlives the stop signal: close flushes it after the last
	// clicks of the grace period, then stops it.
	if err := svc.engine.Start(context.WithoutCancel(ctx)); err != nil {
		svc.listener.Close()
		return fail(err)
	}
	var runners []bot.Runner
	for _, r := range svc.running {
		if rr, ok := r.(bot.Runner); ok {
			runners = append(runners, rr)
		}
	}
	if len(runners) > 0 {
		// Clicks keep arriving over a platform's own connection through
		// the shutdown grace, as they do over HTTP; serve ends it with the
		// listener.
		var runCtx context.Context
		runCtx, svc.stopRunners = context.WithCancel(context.WithoutCancel(ctx))
		svc.ran = make(chan runnerEnd, len(runners))
		svc.runners = len(runners)
		for _, rr := range runners {
			go func() { svc.ran <- runnerEnd{rr, rr.Run(runCtx, svc.engine)} }()
		}
	}
	abs, _ := filepath.Abs(cfg.Store.Path)
	started := []any{"listen", svc.listener.Addr().String(), "store", abs}
	started = append(started, startLog...)
	log.Info("approvebot started", append(started, "groups", len(cfg.Approvers))...)
	return svc, nil
}

// serve runs until ctx ends, then stops in order: new approval requests are
// refused (503) while clicks and polls are still served, so held requests can
// be decided during the grace period; those still held at its end are
// answered "still pending"; the listener closes; acknowledged clicks are
// decided; the outbox is flushed; the store closes. Pending requests stay in
// the store with their deadlines for the next start.
func (svc *service) serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- svc.http.Serve(svc.listener) }()
	var lost, damaged error
	waiting := svc.runners // connections still to end
	select {
	case err := <-errc:
		svc.close(context.Background())
		return fmt.Errorf("http server: %w", err)
	case end := <-svc.ran: // nil channel without such connections
		// No click can arrive over it any more: stop as on SIGTERM,
		// without waiting out a grace period nobody can use, and exit
		// non-zero.
		waiting--
		lost = end.err
		if lost == nil {
			lost = fmt.Errorf("%s is gone", end.runner.Connection())
		}
		svc.log.Error("stopping: "+end.runner.Connection()+" is gone", "err", lost)
	case <-ctx.Done():
	case <-svc.store.Failed():
		// Nothing more can be read or recorded: held agents are answered
		// "still pending" at once (a retry reattaches once the file is
		// repaired) and the process exits non-zero.
		damaged = svc.store.Err()
		svc.log.Error("stopping: the store failed; nothing more is served from it", "err", damaged, "stack", string(svc.store.Stack()))
	}
	grace := svc.config().ShutdownGrace // as last reloaded
	if lost != nil || damaged != nil {
		grace = 0
	}
	svc.log.Info("stopping: no new requests; held requests wait up to the grace period", "grace", grace)
	// Clicks and polls keep being served during the grace period, so held
	// requests can still be decided; only new requests are refused.
	svc.api.StopIntake()
	// The grace and the shutdown bounds below are on the wall clock: they
	// must end inside the real seconds the supervisor (systemd, Kubernetes)
	// allows before it kills the process.
	graceCtx, cancelGrace := context.WithTimeout(context.Background(), grace)
	svc.api.WaitHeld(graceCtx)
	cancelGrace()
	svc.api.Drain() // whoever is still held is answered "still pending" now
	if svc.stopRunners != nil {
		svc.stopRunners()
		for ; waiting > 0; waiting-- {
			<-svc.ran
		}
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Held agents taken off net/http are answered by Drain's callbacks,
	// which http.Server.Shutdown does not wait for.
	svc.api.WaitHeld(shutCtx)
	if err := svc.http.Shutdown(shutCtx); err != nil {
		svc.log.Warn("http shutdown", "err", err)
	}
	svc.close(shutCtx)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	if lost != nil {
		return lost
	}
	if damaged != nil {
		return fmt.Errorf("store: %w; restore the file from a backup", damaged)
	}
	svc.log.Info("stopped")
	return nil
}

func (svc *service) close(ctx context.Context) {
	svc.api.Close()
	if svc.stopRunners != nil {
		svc.stopRunners()
	}
	svc.closePlatforms()
	drainCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	svc.engine.Drain(drainCtx)
	if err := svc.store.Close(); err != nil {
		svc.log.Error("close store", "err", err)
	}
}

// closePlatforms stops what the platforms started (Running's Close).
func (svc *service) closePlatforms() {
	for _, r := range svc.running {
		r.Close()
	}
}

// warnSameVolume warns when the checkpoint file shares a file system with
// the store: whoever can rewrite the store there can most likely cut the
// checkpoints too, and then they anchor nothing.
func warnSameVolume(log *slog.Logger, cfg *policy.Config) {
	if cfg.Audit.CheckpointFile == "" {
		return
	}
	if sameFileSystem(filepath.Dir(cfg.Audit.CheckpointFile), filepath.Dir(cfg.Store.Path)) {
		log.Warn("audit.checkpoints.file is on the same file system as the store: put it on another volume, or someone able to rewrite the store can cut the checkpoints too",
			"file", cfg.Audit.CheckpointFile, "store", cfg.Store.Path)
	}
}

// sameFileSystem reports whether two directories are on one file system
// (false when either cannot be read: start and doctor report that).
func sameFileSystem(a, b string) bool {
	var sa, sb syscall.Stat_t
	if syscall.Stat(a, &sa) != nil || syscall.Stat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev
}

// platformChecker is what readiness needs from an adapter.
type platformChecker interface {
	Name() string
	Check(ctx context.Context) error
}

// readinessInterval is how often the platforms are checked, whatever the
// rate of probes: /readyz reads the last outcome and never calls a
// platform itself, so a flood of probes spends no platform rate limit.
const readinessInterval = 30 * time.Second

// platformReadiness checks every platform in the background and keeps the
// last outcome.
type platformReadiness struct {
	platforms []bot.Platform
	log       *slog.Logger

	mu  sync.Mutex
	err error
}

func newPlatformReadiness(ctx context.Context, clock bot.Clock, platforms []bot.Platform, log *slog.Logger) *platformReadiness {
	pr := &platformReadiness{platforms: platforms, log: log, err: errors.New("the platforms have not been checked yet")}
	first := make(chan struct{})
	go func() {
		// The next check is armed once this one is done (and before the
		// start goes on): however far a test moves the clock, checks never
		// pile up.
		due := make(chan struct{}, 1)
		for {
			pr.check(ctx)
			t := clock.AfterFunc(readinessInterval, func() { due <- struct{}{} })
			select {
			case <-first:
			default:
				close(first)
			}
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-due:
			}
		}
	}()
	// Ready as soon as started, when the platforms answer at once; a slow
	// one is waited for in the background, not by the start. This bounds a
	// wait on the network, so it is on the wall clock.
	select {
	case <-first:
	case <-time.After(3 * time.Second):
	}
	return pr
}

func (pr *platformReadiness) check(ctx context.Context) {
	var err error
	for _, p := range pr.platforms {
		c, ok := p.(platformChecker)
		if !ok {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		cerr := c.Check(cctx)
		cancel()
		if cerr != nil {
			err = fmt.Errorf("%s not reachable: %v", c.Name(), cerr)
			break
		}
	}
	pr.mu.Lock()
	was := pr.err
	pr.err = err
	pr.mu.Unlock()
	switch {
	case err != nil && (was == nil || was.Error() != err.Error()):
		pr.log.Warn("not ready", "reason", err.Error())
	case err == nil && was != nil:
		pr.log.Info("platforms reachable")
	}
}

// ready is the last outcome; it calls nothing.
func (pr *platformReadiness) ready(context.Context) error {
	for _, p := range pr.platforms {
		// A dropped socket must show at once; asking costs nothing.
		if sr, ok := p.(interface{ SocketReady() error }); ok {
			if err := sr.SocketReady(); err != nil {
				return err
			}
		}
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.err
}

// newLogStream is where serve and demo log: lines logged while the last
// ones are being written go out together in one write. The command closes
// it before it returns, whichever way it ends, so run never returns with a
// line unwritten. The other commands write to stderr directly.
func newLogStream(stderr io.Writer) *logwriter.Writer {
	return logwriter.New(stderr, logwriter.DefaultPending)
}

// newLogger is the service's logger: JSON lines, durations as text, and the
// request id of the context a line is logged with.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(bot.LogRequests(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: humanDurations})))
}

// humanDurations logs durations as Go writes them ("20s", "1m30s") rather
// than as slog's nanosecond counts ("grace":20000000000), which nobody
// reading a log line can take in at a glance.
func humanDurations(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

// config is the configuration in force, as last reloaded.
func (svc *service) config() *policy.Config {
	svc.reloadMu.Lock()
	defer svc.reloadMu.Unlock()
	return svc.cfg
}

// maxCallbackBody bounds a platform callback's body; the adapters bound it
// again at the same size.
const maxCallbackBody = 1 << 20
