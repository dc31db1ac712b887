package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/approvebot/approvebot/store"
)

// The HTTP floor is what posted intake costs when nothing but HTTP is done:
// a child process (this benchmark's own binary, started with floorEnv set)
// reads each agent's body, answers 202 and posts one message of the size
// approvebot posts to the same fake Slack, with nothing parsed, stored,
// digested or logged. Measured like intake, on the same cores with the same
// agents and fake, it is the most any service that speaks these two HTTP
// exchanges per request could post here, so it bounds the share of the
// store alone that posted intake can reach on this machine.
//
// Started with floorStoreEnv as well, the floor also does the store alone's
// work for each request before answering (createAlone, on a store opened as
// the baseline opens it): HTTP and the store, with nothing of approvebot's
// own between them.

// floorEnv names the fake Slack's URL in the child's environment; its
// presence makes the process the floor server instead of the benchmark.
const floorEnv = "APPROVEBENCH_FLOOR_SLACK_URL"

// floorStoreEnv names, in the floor server's environment, a directory in
// which it opens approvebot's store and creates one request per agent
// request.
const floorStoreEnv = "APPROVEBENCH_FLOOR_STORE"

// floorWorkers is how many posts the floor server makes at once, as many
// as approvebot's outbox workers.
const floorWorkers = 64

// floorBlocksBytes is the size of the blocks the floor server posts: about
// what approvebot's message for the benchmark's request takes.
const floorBlocksBytes = 3000

// floorChild runs the floor server when the environment asks for it, and
// says whether it did (the process then exits with its error).
func floorChild(ctx context.Context) (bool, error) {
	slackURL, ok := os.LookupEnv(floorEnv)
	if !ok {
		return false, nil
	}
	return true, serveFloor(ctx, slackURL, os.Getenv(floorStoreEnv), os.Stdout)
}

// serveFloor listens on loopback, prints the address as approvebot does,
// and serves until ctx ends (SIGTERM) or its standard input closes (the
// benchmark holds it open, so a benchmark that dies takes it along). With
// storeDir set, it creates each request in the store there before
// answering.
func serveFloor(ctx context.Context, slackURL, storeDir string, stdout io.Writer) (err error) {
	var bl *builder
	var st *store.Bolt
	if storeDir != "" {
		if bl, err = newBuilder(storeDir); err != nil {
			return err
		}
		if st, err = openStoreAlone(storeDir); err != nil {
			return err
		}
		defer func() {
			if cerr := st.Close(); err == nil {
				err = cerr
			}
		}()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = floorWorkers
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	form := url.Values{
		"token": {botToken}, "channel": {channel}, "text": {"Approval needed"},
		"blocks": {floorBlocks()},
	}.Encode()
	posts := make(chan struct{}, 1<<20)
	var failed atomic.Int64
	for range floorWorkers {
		go func() {
			for range posts {
				if err := floorPost(client, slackURL, form); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	var n, failedCreates atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "approvebench_floor_failed_posts %d\n", failed.Load())
		fmt.Fprintf(w, "approvebench_floor_failed_creates %d\n", failedCreates.Load())
	})
	mux.HandleFunc("POST /v1/approvals", func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+callerToken)) != 1 {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		if _, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10)); err != nil {
			http.Error(w, `{"error":"body"}`, http.StatusBadRequest)
			return
		}
		i := n.Add(1)
		if st != nil {
			if err := createAlone(st, bl, int(i)); err != nil {
				failedCreates.Add(1)
				http.Error(w, `{"error":"store"}`, http.StatusInternalServerError)
				return
			}
		}
		posts <- struct{}{}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"approved":false,"status":"pending","approval_request_id":"ar_floor_%d"}`, i)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(stdout, "approvebot listening on http://%s\n", ln.Addr())
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	context.AfterFunc(ctx, func() { _ = srv.Close() })
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// floorPost posts one message as the Slack client would, and reads the
// answer through.
func floorPost(c *http.Client, slackURL, form string) error {
	resp, err := c.Post(strings.TrimSuffix(slackURL, "/")+"/chat.postMessage", "application/x-www-form-urlencoded", strings.NewReader(form))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"ok":true`) {
		return fmt.Errorf("chat.postMessage: HTTP %d %s", resp.StatusCode, clip(body))
	}
	return nil
}

// floorBlocks is a Block Kit message of about floorBlocksBytes: sections of
// labelled fields, as approvebot's are.
func floorBlocks() string {
	var b strings.Builder
	b.WriteString(`[{"type":"header","text":{"type":"plain_text","text":"Approval needed"}}`)
	for i := 0; b.Len() < floorBlocksBytes; i++ {
		fmt.Fprintf(&b, `,{"type":"section","fields":[{"type":"plain_text","text":"field %d\nvalue %d of the request"},{"type":"plain_text","text":"other %d\nanother value"}]}`, i, i, i)
	}
	b.WriteString(`]`)
	return b.String()
}

// floorRun measures the HTTP floor, then the same with the store's work,
// at the highest intake concurrency, with as many requests as intake takes
// there.
func (b *bench) floorRun() error {
	levels := b.rep.Sizes.Levels
	c := levels[len(levels)-1]
	n := b.rep.Sizes.Intake[c]
	var err error
	if b.rep.Floor, err = b.floorMeasure("floor", false, n, c); err != nil {
		return err
	}
	b.rep.FloorStore, err = b.floorMeasure("floor-store", true, n, c)
	return err
}

// floorMeasure runs n requests at concurrency c against a floor server,
// with the store's work or without.
func (b *bench) floorMeasure(name string, withStore bool, n, c int) (intakeResult, error) {
	s, err := b.startFloor(name, withStore)
	if err != nil {
		return intakeResult{}, err
	}
	defer s.kill()
	if _, err := b.intake(s, name+"-warm", 200, 16); err != nil {
		return intakeResult{}, err
	}
	what := "only speaks HTTP"
	if withStore {
		what = "speaks HTTP and creates each request in approvebot's store"
	}
	b.logf("%s: %d requests at concurrency %d to a server that %s", name, n, c, what)
	res, err := b.intake(s, name, n, c)
	if err != nil {
		return intakeResult{}, err
	}
	for _, m := range []string{"approvebench_floor_failed_posts", "approvebench_floor_failed_creates"} {
		if f := b.metric(s, m); f != 0 {
			return intakeResult{}, fmt.Errorf("%s server: %s %v", name, m, f)
		}
	}
	b.logf("%s: c=%d accepted %.0f/s (p50 %v, p99 %v), posted %.0f/s, CPU per request: server %v, benchmark %v",
		name, c, res.Accepted, res.AcceptP50, res.AcceptP99, res.Posted, res.CPUPerReq, res.BenchCPUPerReq)
	return res, b.stop(s)
}

// startFloor runs this binary as the floor server against a new fake, in
// a new directory called name; withStore, its store is in that directory.
func (b *bench) startFloor(name string, withStore bool) (*server, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := b.newDir(name)
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "floor.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	fake := newFake()
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), floorEnv+"="+fake.URL())
	if withStore {
		cmd.Env = append(cmd.Env, floorStoreEnv+"="+dir)
	}
	cmd.Stderr = logFile
	stdin, err := cmd.StdinPipe()
	if err != nil {
		fake.Close()
		return nil, err
	}
	return b.launch(&server{cmd: cmd, dir: dir, logs: logPath, fake: fake, stdin: stdin})
}
