package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/llm-observer/llm-observer/internal/config"
	"github.com/llm-observer/llm-observer/internal/feed"
	"github.com/llm-observer/llm-observer/internal/top"
)

// runTop is `llm-observer top`: attached to the service's feed when one
// answers, else running the observer's data path in this process.
func runTop(args []string) error {
	fs := flag.NewFlagSet("llm-observer top", flag.ContinueOnError)
	once := fs.Bool("once", false, "print one plain-text snapshot after -collect and exit (the default when stdout is not a terminal)")
	collect := fs.Duration("collect", 3*time.Second, "with -once: how long to collect calls before printing")
	window := fs.Duration("window", 10*time.Second, "span of the rates, at most 60s")
	recent := fs.Int("calls", 10, "how many of the newest calls to list")
	addr := fs.String("feed", "", "the service's feed: a socket path or loopback host:port (default: LLM_OBSERVER_FEED, else "+feed.DefaultSocket+")")
	standalone := fs.Bool("standalone", false, "load the probes in this process even when the service offers its feed")
	attach := fs.Bool("attach", false, "only attach to the service's feed; fail when none answers")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *window <= 0 || *window > top.MaxWindow || *collect <= 0 {
		return fmt.Errorf("-window must be in (0, %v] and -collect more than 0", top.MaxWindow)
	}
	if *standalone && *attach {
		return errors.New("-standalone and -attach exclude each other")
	}
	cfg, err := config.FromEnvironment(nil, os.Stderr)
	if err != nil {
		return err
	}
	if *addr == "" {
		*addr = cfg.Feed
	}
	if !*once && !term.IsTerminal(int(os.Stdout.Fd())) {
		*once = true
	}
	opts := top.Options{Window: *window, Recent: *recent}
	show := func(ctx context.Context, src top.Source) error {
		if *once {
			return top.Once(ctx, src, opts, *collect, os.Stdout)
		}
		return top.Run(ctx, src, opts)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if !*standalone && *addr != "" {
		conn, err := top.Dial(ctx, *addr)
		switch {
		case err == nil:
			defer conn.Close()
			opts.Source = fmt.Sprintf("attached to %s (observer pid %d)", *addr, conn.Hello.PID)
			return show(ctx, conn)
		case errors.Is(err, os.ErrPermission):
			return fmt.Errorf("the feed at %s is for root: run sudo llm-observer top (%w)", *addr, err)
		case *attach:
			return fmt.Errorf("no observer feed at %s: %w (is the service running? LLM_OBSERVER_FEED must match its setting)", *addr, err)
		case !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ECONNREFUSED):
			return fmt.Errorf("attach to the feed at %s: %w (-standalone runs the probes here instead)", *addr, err)
		}
	}
	opts.Source = "standalone (probes loaded by this process)"
	if !*standalone {
		fmt.Fprintf(os.Stderr, "llm-observer top: no observer answers at %s; loading the probes in this process\n", *addr)
	}
	return topStandalone(ctx, cfg, !*once, func(ctx context.Context, sub *feed.Subscription) error { return show(ctx, sub) })
}

// topStandalone runs the service's data path in this process, the same
// wiring as the service but with no console, health server or socket, and
// shows its feed until show returns.
func topStandalone(ctx context.Context, cfg config.Config, fullScreen bool, show func(context.Context, *feed.Subscription) error) error {
	cfg.HealthAddr, cfg.Feed, cfg.PprofAddr = "", "", ""
	cfg.Export.ConsoleWriter = io.Discard
	if fullScreen {
		// What the observer writes to stderr would scribble over the view:
		// it is kept and shown once the view is gone.
		restore, err := holdStderr()
		if err != nil {
			return err
		}
		defer restore()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	feeds := make(chan *feed.Feed, 1)
	served := make(chan error, 1)
	go func() {
		served <- serve(cfg, serveOptions{parent: ctx, onFeed: func(f *feed.Feed) { feeds <- f }})
	}()
	var f *feed.Feed
	select {
	case f = <-feeds:
	case err := <-served:
		return err
	}
	sub := f.Subscribe()
	defer sub.Close()
	uiCtx, uiCancel := context.WithCancel(ctx)
	var serveErr error
	serveDone := make(chan struct{})
	go func() {
		serveErr = <-served
		uiCancel() // the data path stopped: so does the view
		close(serveDone)
	}()
	err := show(uiCtx, sub)
	cancel()
	<-serveDone
	return errors.Join(err, serveErr)
}

// holdStderr points file descriptor 2 at a temporary file until restore,
// which writes what was held to the real stderr.
func holdStderr() (restore func(), err error) {
	held, err := os.CreateTemp("", "llm-observer-top-*.log")
	if err != nil {
		return nil, fmt.Errorf("hold stderr: %w", err)
	}
	os.Remove(held.Name())
	saved, err := unix.Dup(2)
	if err != nil {
		held.Close()
		return nil, fmt.Errorf("hold stderr: %w", err)
	}
	if err := unix.Dup3(int(held.Fd()), 2, 0); err != nil {
		unix.Close(saved)
		held.Close()
		return nil, fmt.Errorf("hold stderr: %w", err)
	}
	return func() {
		unix.Dup3(saved, 2, 0) //nolint:errcheck // nothing better to do with stderr
		unix.Close(saved)
		if _, err := held.Seek(0, io.SeekStart); err == nil {
			io.Copy(os.Stderr, held) //nolint:errcheck
		}
		held.Close()
	}, nil
}
