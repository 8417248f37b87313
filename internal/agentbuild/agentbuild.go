// Package agentbuild produces the guest agent binary for the host's tests:
// a static linux/amd64 build of cmd/shakedown-agent from the shakedown
// source this program was built from. It imports nothing of shakedown's.
package agentbuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// EnvAgent names a prebuilt agent binary to use instead of building one,
// for hosts without a Go toolchain.
const EnvAgent = "SHAKEDOWN_AGENT"

const modulePath = "github.com/shakedown-dev/shakedown"

// CacheKind is the cache kind whose directory Path builds into: each
// binary an entry keyed by its SHA-256.
const CacheKind = "agent-build"

var (
	mu    sync.Mutex
	built = map[string]string{}
)

// Path returns a static agent binary, building it into dir (once per
// process and dir; the go command's own cache makes later builds cheap).
func Path(ctx context.Context, dir string) (string, error) {
	if p := os.Getenv(EnvAgent); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("agent from $%s: %w", EnvAgent, err)
		}
		return p, nil
	}
	mu.Lock()
	defer mu.Unlock()
	if p, ok := built[dir]; ok {
		return p, nil
	}
	src, err := sourceDir(ctx)
	if err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("build agent: the go command is not on PATH: install Go, or set %s to a static shakedown-agent binary", EnvAgent)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("build agent: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".agent-*")
	if err != nil {
		return "", fmt.Errorf("build agent: %w", err)
	}
	tmp.Close()
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", tmp.Name(), "./cmd/shakedown-agent")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=-mod=mod")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("build agent in %s: %w\n%s", src, err, strings.TrimSpace(out.String()))
	}
	// The name is the binary's hash: processes of other checkouts (two
	// CI clones, a worktree) share dir, and a fixed name would let one
	// replace another's agent between its build and its use. In the
	// cache, that makes each binary an entry that image ls lists and gc
	// collects.
	sum, err := fileHash(tmp.Name())
	if err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("build agent: %w", err)
	}
	final := filepath.Join(dir, sum)
	if err := os.Rename(tmp.Name(), final); err != nil {
		return "", fmt.Errorf("build agent: %w", err)
	}
	built[dir] = final
	return final, nil
}

// sourceDir finds the shakedown module's source: next to this file when the
// binary was built from a checkout or the module cache (the usual case for
// go test), else wherever the go command resolves the module.
func sourceDir(ctx context.Context) (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok {
		root := filepath.Join(filepath.Dir(file), "..", "..")
		if isModuleRoot(root) {
			return root, nil
		}
	}
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", modulePath).Output()
	if dir := strings.TrimSpace(string(out)); err == nil && isModuleRoot(dir) {
		return dir, nil
	}
	return "", errors.New("build agent: cannot find the shakedown source (built with -trimpath?): set " + EnvAgent + " to a static shakedown-agent binary")
}

func isModuleRoot(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	return err == nil && bytes.Contains(b, []byte("module "+modulePath+"\n"))
}

// fileHash is the hex SHA-256 of a file's contents.
func fileHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
