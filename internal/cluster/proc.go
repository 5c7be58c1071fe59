package cluster

import (
	"bytes"
	"math"
	"os"
	"strconv"
	"sync"
	"time"
)

// clockTicks is the unit of /proc's CPU times (USER_HZ, 100 on every
// Linux platform Go supports).
const clockTicks = 100

// cpuWindow is the least time between two CPU samples: the CPU figure
// is the use over the last window or more.
const cpuWindow = 2 * time.Second

// procStats samples this process's CPU time and resident memory from
// /proc/self. mu guards every field.
type procStats struct {
	mu      sync.Mutex
	start   time.Time
	at      time.Time // the last CPU sample
	cpuTime float64   // CPU seconds at that sample
	percent float64   // CPU use between the two last samples
}

func newProcStats() *procStats {
	now := time.Now()
	p := &procStats{start: now, at: now}
	p.cpuTime, _ = cpuSeconds()
	return p
}

// sample returns the uptime in seconds, the CPU use in percent of one
// core and the RSS in bytes (0 when /proc does not tell).
func (p *procStats) sample() (uptime int64, cpu float64, rss int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if d := now.Sub(p.at); d >= cpuWindow {
		if c, ok := cpuSeconds(); ok {
			p.percent = math.Round(max(0, c-p.cpuTime)/d.Seconds()*1000) / 10
			p.cpuTime = c
		}
		p.at = now
	}
	return int64(now.Sub(p.start) / time.Second), p.percent, rssBytes()
}

// cpuSeconds reads the user and system CPU time of this process.
func cpuSeconds() (float64, bool) {
	raw, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(raw[i+1:]) // f[0] is field 3 (state); utime is 14, stime 15
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	s, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return float64(u+s) / clockTicks, true
}

// rssBytes reads the resident set size of this process.
func rssBytes() int64 {
	raw, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(raw)
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}
