package scenario

import (
	"fmt"
	"slices"
	"testing"
)

func TestParseShard(t *testing.T) {
	tests := []struct {
		in      string
		k, n    int
		wantErr bool
	}{
		{"1/1", 1, 1, false},
		{"2/4", 2, 4, false},
		{"4/4", 4, 4, false},
		{"0/4", 0, 0, true},
		{"5/4", 0, 0, true},
		{"1/0", 0, 0, true},
		{"-1/4", 0, 0, true},
		{"1", 0, 0, true},
		{"a/b", 0, 0, true},
		{"", 0, 0, true},
	}
	for _, tt := range tests {
		k, n, err := ParseShard(tt.in)
		if k != tt.k || n != tt.n || (err != nil) != tt.wantErr {
			t.Errorf("ParseShard(%q) = %d, %d, %v; want %d, %d, error %v", tt.in, k, n, err, tt.k, tt.n, tt.wantErr)
		}
	}
}

// TestShardPartition checks that the shards of any list cover it with no
// overlap and no gap, whatever order the files come in, and are balanced.
func TestShardPartition(t *testing.T) {
	for files := 0; files <= 9; files++ {
		var paths []string
		for i := files - 1; i >= 0; i-- { // reversed, to check the sorting
			paths = append(paths, fmt.Sprintf("./s/%02d.star", i))
		}
		if files > 0 {
			paths = append(paths, paths[0]) // a duplicate counts once
		}
		for n := 1; n <= 5; n++ {
			t.Run(fmt.Sprintf("%d files in %d shards", files, n), func(t *testing.T) {
				seen := map[string]int{}
				smallest, largest := files, 0
				for k := 1; k <= n; k++ {
					shard := Shard(paths, k, n)
					if again := Shard(slices.Clone(paths), k, n); !slices.Equal(shard, again) {
						t.Errorf("shard %d/%d: got %v, then %v", k, n, shard, again)
					}
					for _, p := range shard {
						seen[p]++
					}
					smallest, largest = min(smallest, len(shard)), max(largest, len(shard))
				}
				if len(seen) != files {
					t.Errorf("got %d distinct files in all shards, want %d", len(seen), files)
				}
				for p, c := range seen {
					if c != 1 {
						t.Errorf("%s is in %d shards, want 1", p, c)
					}
				}
				if largest-smallest > 1 {
					t.Errorf("shard sizes range from %d to %d, want a difference of at most 1", smallest, largest)
				}
			})
		}
	}
}

func TestShardOrder(t *testing.T) {
	paths := []string{"c.star", "a.star", "./b.star", "d.star", "e.star"}
	tests := []struct {
		k, n int
		want []string
	}{
		{1, 2, []string{"a.star", "c.star", "e.star"}},
		{2, 2, []string{"b.star", "d.star"}},
		{3, 3, []string{"c.star"}},
		{1, 1, []string{"a.star", "b.star", "c.star", "d.star", "e.star"}},
	}
	for _, tt := range tests {
		if got := Shard(paths, tt.k, tt.n); !slices.Equal(got, tt.want) {
			t.Errorf("Shard(%d/%d) = %v, want %v", tt.k, tt.n, got, tt.want)
		}
	}
}
