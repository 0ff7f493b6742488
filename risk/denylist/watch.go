package denylist

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// PollInterval is how often a Screen looks at its file for a change.
const PollInterval = 2 * time.Second

// Reload outcomes, the label values of payflow_denylist_reloads_total.
const (
	OutcomeLoaded = "loaded"
	OutcomeFailed = "failed"
)

// Screen is the deny list a process screens against: the last version of
// its file that parsed. Run reloads it when the file changes (its mtime,
// size or inode, looked at every PollInterval) and at once on SIGHUP; a
// version that does not parse (or a file gone) keeps the previous list, is
// logged and counted. A Screen with no path lists nothing. Safe for
// concurrent use; a nil *Screen lists nothing.
type Screen struct {
	path string
	list atomic.Pointer[List]
	log  *slog.Logger

	mu   sync.Mutex // serialises reloads
	seen fileID     // the file as last looked at

	entries    prometheus.Gauge
	reloads    *prometheus.CounterVec
	lastReload prometheus.Gauge
}

// fileID is what tells a changed file: a rename over it (a new inode), a
// rewrite (mtime, size), its removal (missing).
type fileID struct {
	missing bool
	inode   uint64
	size    int64
	mtime   int64 // Unix nanoseconds
}

func stat(path string) fileID {
	fi, err := os.Stat(path)
	if err != nil {
		return fileID{missing: true}
	}
	id := fileID{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.inode = st.Ino
	}
	return id
}

// Open loads the deny list at path (empty: no list). A list configured but
// unreadable fails: a process must not start unscreened.
func Open(path string, log *slog.Logger) (*Screen, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Screen{path: path, log: log,
		entries: prometheus.NewGauge(prometheus.GaugeOpts{Name: "payflow_denylist_entries",
			Help: "Addresses on the deny list this process screens against (the last version of the file that parsed)."}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "payflow_denylist_reloads_total",
			Help: "Loads of the deny list file, by outcome: loaded, or failed (the previous list is kept)."}, []string{"outcome"}),
		lastReload: prometheus.NewGauge(prometheus.GaugeOpts{Name: "payflow_denylist_last_reload_timestamp_seconds",
			Help: "When the deny list was last loaded successfully (Unix seconds; 0: never)."}),
	}
	s.reloads.WithLabelValues(OutcomeLoaded)
	s.reloads.WithLabelValues(OutcomeFailed)
	if path == "" {
		return s, nil
	}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Path is the file the list is read from ("" for none).
func (s *Screen) Path() string {
	if s == nil {
		return ""
	}
	return s.path
}

// Check says whether address is on the list, and its entry.
func (s *Screen) Check(address string) (Entry, bool) {
	if s == nil {
		return Entry{}, false
	}
	return s.list.Load().Lookup(address)
}

// List is the list now in force (nil: none).
func (s *Screen) List() *List {
	if s == nil {
		return nil
	}
	return s.list.Load()
}

// Collectors are the Screen's metrics, to register once.
func (s *Screen) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.entries, s.reloads, s.lastReload}
}

// Reload reads the file now. On an error the previous list stays in force;
// the error is logged, counted and returned.
func (s *Screen) Reload() error {
	if s == nil || s.path == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reload(stat(s.path))
}

func (s *Screen) reload(id fileID) error {
	s.seen = id
	l, err := Load(s.path)
	if err != nil {
		s.reloads.WithLabelValues(OutcomeFailed).Inc()
		s.log.Error("deny list not loaded; the previous list stays in force", "path", s.path, "err", err,
			"entries", s.list.Load().Len())
		return err
	}
	prev := s.list.Swap(l)
	s.reloads.WithLabelValues(OutcomeLoaded).Inc()
	s.entries.Set(float64(l.Len()))
	s.lastReload.Set(float64(time.Now().Unix()))
	if prev == nil || prev.Len() != l.Len() {
		s.log.Info("deny list loaded", "path", s.path, "entries", l.Len())
	}
	return nil
}

// Run reloads the list when its file changes, and at once on SIGHUP, until
// ctx ends. Nothing to do without a path.
func (s *Screen) Run(ctx context.Context) {
	if s == nil || s.path == "" {
		return
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			s.log.Info("SIGHUP: reloading the deny list", "path", s.path)
			_ = s.Reload()
		case <-t.C:
			s.poll()
		}
	}
}

// poll reloads when the file is not as last looked at.
func (s *Screen) poll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id := stat(s.path); id != s.seen {
		_ = s.reload(id)
	}
}
