package bench

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// readProcess reads this process's resident memory and open file
// descriptors from /proc (Linux); elsewhere the fields stay zero.
func readProcess() Process {
	var p Process
	if f, err := os.Open("/proc/self/status"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if !ok {
				continue
			}
			switch k {
			case "VmRSS":
				p.RSSMB = kBtoMB(v)
			case "VmHWM":
				p.PeakRSSMB = kBtoMB(v)
			}
		}
		f.Close()
	}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		p.FDs = len(ents) - 1 // the directory being read is one of them
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		p.FDLimit = int(lim.Cur)
	}
	return p
}

func kBtoMB(v string) float64 {
	n, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
	if err != nil {
		return 0
	}
	return n / 1024
}
