package main

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// fileLimits are RLIMIT_NOFILE before and after raising it.
type fileLimits struct {
	SoftBefore, Hard, Soft uint64
}

// raiseFileLimit lifts this process's open-file limit to its hard limit.
// Holding 10,000 agents takes one descriptor per connection on each side;
// the server, a child process, inherits the raised limit.
func raiseFileLimit() (fileLimits, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fileLimits{}, err
	}
	out := fileLimits{SoftBefore: lim.Cur, Hard: lim.Max}
	lim.Cur = lim.Max
	// Setting it explicitly (even to what Go's runtime already raised it to)
	// makes child processes inherit it rather than the original soft limit.
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return out, err
	}
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return out, err
	}
	out.Soft = lim.Cur
	return out, nil
}

// machine describes where the benchmark ran.
type machine struct {
	CPU        string
	Cores      int
	MemoryGiB  float64
	Kernel     string
	Filesystem string // type and device of the store directory's mount
	StoreDir   string
	GoVersion  string
}

// loadAverage is the 1, 5 and 15 minute load averages: on a machine shared
// with other work, figures from a loaded run are not comparable.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func describeMachine(dir string) machine {
	m := machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), StoreDir: dir}
	m.CPU = firstField("/proc/cpuinfo", "model name")
	if kb := firstField("/proc/meminfo", "MemTotal"); kb != "" {
		n, _ := strconv.ParseFloat(strings.TrimSuffix(kb, " kB"), 64)
		m.MemoryGiB = n / (1 << 20)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	m.Filesystem = mountOf(dir)
	return m
}

// firstField is the value of the first "key : value" line for key.
func firstField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// mountOf names the filesystem holding dir, from the longest matching mount
// point in /proc/self/mounts.
func mountOf(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return ""
	}
	best, out := -1, ""
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		mp := f[1]
		if abs != mp && !strings.HasPrefix(abs, strings.TrimSuffix(mp, "/")+"/") {
			continue
		}
		if len(mp) > best {
			best, out = len(mp), f[2]+" on "+f[0]+" (mounted at "+mp+", "+f[3]+")"
		}
	}
	return out
}
