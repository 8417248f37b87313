package scenario

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ParseShard parses "K/N" (shard K of N, counting from 1).
func ParseShard(s string) (k, n int, err error) {
	ks, ns, ok := strings.Cut(s, "/")
	if ok {
		k, err = strconv.Atoi(ks)
	}
	if ok && err == nil {
		n, err = strconv.Atoi(ns)
	}
	if !ok || err != nil || n < 1 || k < 1 || k > n {
		return 0, 0, fmt.Errorf("shard %q: want K/N with 1 <= K <= N, e.g. 2/4", s)
	}
	return k, n, nil
}

// Shard returns the paths of shard k of n: the paths are cleaned, sorted
// and deduplicated, and the i-th of them (from 0) belongs to shard
// i%n + 1. Every path is in exactly one shard, whatever order the CI
// runners list them in, and the shards differ in size by at most one.
func Shard(paths []string, k, n int) []string {
	sorted := make([]string, len(paths))
	for i, p := range paths {
		sorted[i] = filepath.Clean(p)
	}
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	var mine []string
	for i, p := range sorted {
		if i%n == k-1 {
			mine = append(mine, p)
		}
	}
	return mine
}
