package faulttest

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/internal/testkit"
)

// Probe timing: /readyz is asked every pollEvery, like a load balancer
// would, and an answer that takes longer than answerTimeout counts as none
// (a frozen process accepts the connection and never answers).
const (
	pollEvery     = 100 * time.Millisecond
	answerTimeout = 2 * time.Second
)

// sample is one /readyz request: when it was sent, when its answer (or
// the failure) came back, the status (0: no answer) and the body.
type sample struct {
	sent, got time.Time
	code      int
	body      string
}

func (s sample) ready() bool { return s.code == http.StatusOK }

// unready is an answer that is not "ready": 503, or no answer at all.
func (s sample) unready() bool { return s.code != http.StatusOK }

func (s sample) String() string {
	if s.code == 0 {
		return fmt.Sprintf("no answer at %s (%s)", s.got.Format("15:04:05.000"), s.body)
	}
	return fmt.Sprintf("%d at %s %s", s.code, s.got.Format("15:04:05.000"), strings.TrimSpace(s.body))
}

// probe polls one instance's /readyz in the background and keeps every
// answer.
type probe struct {
	name   string
	url    string
	client *http.Client
	stop   chan struct{}
	done   chan struct{}

	mu      sync.Mutex
	samples []sample
}

// startProbe polls http://addr/readyz every pollEvery until the test ends.
func startProbe(t *testing.T, name, addr string) *probe {
	p := &probe{name: name, url: "http://" + addr + "/readyz", client: &http.Client{Timeout: answerTimeout},
		stop: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	t.Cleanup(p.Stop)
	return p
}

func (p *probe) run() {
	defer close(p.done)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		s := sample{sent: time.Now()}
		resp, err := p.client.Get(p.url)
		if err != nil {
			s.body = err.Error()
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			s.code, s.body = resp.StatusCode, string(b)
		}
		s.got = time.Now()
		p.mu.Lock()
		p.samples = append(p.samples, s)
		p.mu.Unlock()
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
	}
}

// Stop ends the polling (idempotent).
func (p *probe) Stop() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

// all returns the samples so far.
func (p *probe) all() []sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]sample(nil), p.samples...)
}

// first returns the first sample sent at or after since that matches.
func (p *probe) first(since time.Time, match func(sample) bool) (sample, bool) {
	for _, s := range p.all() {
		if !s.sent.Before(since) && match(s) {
			return s, true
		}
	}
	return sample{}, false
}

// last returns the latest sample (zero before the first).
func (p *probe) last() sample {
	all := p.all()
	if len(all) == 0 {
		return sample{}
	}
	return all[len(all)-1]
}

// waitFirst waits up to timeout for a sample sent at or after since that
// matches, and returns it; what names it in the failure message. Before
// every look it calls check (say, that the child still runs).
func (p *probe) waitFirst(t *testing.T, since time.Time, timeout time.Duration, what string, match func(sample) bool, check func() error) sample {
	t.Helper()
	var found sample
	testkit.Eventually(t, timeout, func() error {
		if check != nil {
			if err := check(); err != nil {
				t.Fatal(err)
			}
		}
		s, ok := p.first(since, match)
		if !ok {
			return fmt.Errorf("%s /readyz: no %s yet; last answer: %v", p.name, what, p.last())
		}
		found = s
		return nil
	})
	return found
}

// readyWithin returns the samples that answered 200 although they were
// sent after from and answered before to: within a window in which the
// instance must not say it is ready.
func (p *probe) readyWithin(from, to time.Time) []sample {
	var out []sample
	for _, s := range p.all() {
		if s.ready() && s.sent.After(from) && s.got.Before(to) {
			out = append(out, s)
		}
	}
	return out
}

// mustNotBeReady fails the test if /readyz answered 200 in (from, to); why
// says what the instance was doing.
func (p *probe) mustNotBeReady(t *testing.T, from, to time.Time, why string) {
	t.Helper()
	if lies := p.readyWithin(from, to); len(lies) > 0 {
		t.Errorf("%s /readyz answered 200 %d times while %s (%s – %s); first: %v", p.name, len(lies), why,
			from.Format("15:04:05.000"), to.Format("15:04:05.000"), lies[0])
	}
}

// counts summarises the samples since from (for the log).
func (p *probe) counts(from time.Time) string {
	n := map[int]int{}
	for _, s := range p.all() {
		if !s.sent.Before(from) {
			n[s.code]++
		}
	}
	return fmt.Sprintf("200×%d 503×%d no-answer×%d", n[200], n[503], n[0])
}

var digits = regexp.MustCompile(`[0-9]+`)

// reasons returns the distinct answers sent in [from, to), in order, with
// how often each came (the error text's variable tail, after the reason's
// first ": ", is cut off, and numbers are written N).
func (p *probe) reasons(from, to time.Time) []string {
	var order []string
	n := map[string]int{}
	for _, s := range p.all() {
		if s.sent.Before(from) || !s.sent.Before(to) {
			continue
		}
		body := strings.TrimSpace(s.body)
		if i := strings.Index(body, ": "); i >= 0 {
			body = body[:i]
		}
		k := fmt.Sprintf("%d %s", s.code, digits.ReplaceAllString(body, "N"))
		if s.code == 0 {
			k = "no answer"
		}
		if n[k] == 0 {
			order = append(order, k)
		}
		n[k]++
	}
	out := make([]string, len(order))
	for i, k := range order {
		out[i] = fmt.Sprintf("%s ×%d", k, n[k])
	}
	return out
}
