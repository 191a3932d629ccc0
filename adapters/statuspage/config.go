package statuspage

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"sync"
	"time"
)

// ConfigLog records the loads of the routes file for the page: the reloader
// tells it of each one. Its methods are safe for concurrent use.
type ConfigLog struct {
	mu  sync.Mutex
	cfg Config
}

// NewConfigLog returns a log whose first load is the start, from the files
// (the routes file, then its descriptor sets) serving now.
func NewConfigLog(files []string) *ConfigLog {
	l := &ConfigLog{cfg: Config{Path: files[0]}}
	l.Loaded("start", files)
	return l
}

// Loaded records a load whose routes now serve.
func (l *ConfigLog) Loaded(trigger string, files []string) {
	sum := Checksum(files)
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cfg.Checksum, l.cfg.Loaded = sum, now
	l.cfg.Last = Load{At: now, Trigger: trigger, OK: true}
}

// Refused records a reload that was refused, with its problems.
func (l *ConfigLog) Refused(trigger string, problems []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cfg.Last = Load{At: time.Now(), Trigger: trigger, Problems: problems}
}

// State returns the routes file's state, for Options.Config.
func (l *ConfigLog) State() Config {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.cfg
	return c
}

// Checksum is the first 12 hex digits of the SHA-256 of the files' contents
// in turn: it changes when the routes file or a descriptor set does.
func Checksum(files []string) string {
	h := sha256.New()
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			io.WriteString(h, "missing:"+name)
			continue
		}
		io.Copy(h, f)
		f.Close()
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}
