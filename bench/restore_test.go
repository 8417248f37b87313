package bench

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/internal/testenv"
)

// BenchmarkRestore pairs, in every iteration, a cold boot of the testbed's
// machines (every QEMU started afresh, kernel and init included) with a
// Restore of a snapshot taken once when they were up, each timed to the
// first command's answer on every machine, and reports the medians as
// boot-s and restore-s, their ratio, and the snapshot's size on disk as
// snapshot-MiB (saved states and disk copies). initramfs is one minimal
// machine; debian3 three Debian systems with systemd.
func BenchmarkRestore(b *testing.B) {
	b.Run("initramfs", func(b *testing.B) { benchRestore(b, 1, shakedown.MachineConfig{}) })
	b.Run("debian3", func(b *testing.B) {
		needDebian(b)
		benchRestore(b, 3, debianConfig)
	})
}

func benchRestore(b *testing.B, n int, cfg shakedown.MachineConfig) {
	testenv.NeedVM(b)
	tb := shakedown.New(b, shakedown.Options{QuietConsole: true})
	var ms []*shakedown.Machine
	for i := range n {
		ms = append(ms, tb.Machine(fmt.Sprintf("m%d", i+1), cfg))
	}
	firstCommands := func() {
		for _, m := range ms {
			m.Succeed("true")
		}
	}
	tb.StartAll()
	firstCommands()
	tb.Snapshot("ready")
	size := allocatedMiB(b, filepath.Join(tb.OutputDir(), "snapshots", "ready"))

	var boots, restores []time.Duration
	b.ResetTimer()
	for b.Loop() {
		for _, m := range ms {
			m.Crash()
		}
		began := time.Now()
		tb.StartAll()
		firstCommands()
		boots = append(boots, time.Since(began))

		began = time.Now()
		tb.Restore("ready")
		restored := time.Since(began)
		firstCommands()
		restores = append(restores, time.Since(began))
		b.Logf("restore %v, then the first commands %v", restored, time.Since(began)-restored)
	}
	b.StopTimer()
	b.Logf("boots: %s", formatDurations(boots))
	b.Logf("restores: %s", formatDurations(restores))
	boot, restore := percentile(boots, 50), percentile(restores, 50)
	b.ReportMetric(boot.Seconds(), "boot-s")
	b.ReportMetric(restore.Seconds(), "restore-s")
	b.ReportMetric(boot.Seconds()/restore.Seconds(), "boot/restore")
	b.ReportMetric(size, "snapshot-MiB")
}

// allocatedMiB is the space the files under dir take on disk.
func allocatedMiB(b *testing.B, dir string) float64 {
	var blocks int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			return err
		}
		blocks += st.Blocks
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return float64(blocks*512) / (1 << 20)
}
