package deploy

import (
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"golang.org/x/sys/unix"
)

// repoRoot is the build context: tests run in deploy/.
const repoRoot = ".."

const (
	binaryInImage = "/llm-observer"
	caBundle      = "/etc/ssl/certs/ca-certificates.crt"
)

// Environment variables by which the test binary, re-executed, is told to
// become the empty root's first process instead of running tests.
const (
	emptyRootEnv     = "LLM_OBSERVER_TEST_EMPTY_ROOT"
	emptyRootArgsEnv = "LLM_OBSERVER_TEST_EMPTY_ROOT_ARGS"
	// emptyRootFailed is the exit status of a harness failure, told apart
	// from the status of the program it runs.
	emptyRootFailed = 125
)

func TestMain(m *testing.M) {
	if root := os.Getenv(emptyRootEnv); root != "" {
		enterEmptyRoot(root, os.Getenv(emptyRootArgsEnv))
	}
	os.Exit(m.Run())
}

// enterEmptyRoot gives root the /proc and /sys a container runtime would,
// chroots into it and execs args there. It runs in a process started with
// its own mount namespace, which Go also made private to it, so the bind
// mounts neither show on the host nor outlive the process.
func enterEmptyRoot(root, argsJSON string) {
	fail := func(step string, err error) {
		fmt.Fprintf(os.Stderr, "empty root: %s: %v\n", step, err)
		os.Exit(emptyRootFailed)
	}
	var args []string
	if err := json.Unmarshal([]byte(argsJSON), &args); err != nil || len(args) == 0 {
		fail("arguments", fmt.Errorf("%q: %v", argsJSON, err))
	}
	for _, dir := range []string{"/proc", "/sys"} {
		if err := unix.Mount(dir, root+dir, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			fail("bind "+dir, err)
		}
	}
	if err := unix.Chroot(root); err != nil {
		fail("chroot", err)
	}
	if err := unix.Chdir("/"); err != nil {
		fail("chdir", err)
	}
	// No environment: the image sets none either.
	fail("exec "+args[0], unix.Exec(args[0], args, []string{}))
}

// runInEmptyRoot copies binary into a fresh directory that holds nothing
// else, and runs it there with args. It returns the combined output and
// the exit status.
func runInEmptyRoot(t *testing.T, binary string, args ...string) (string, int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("running a binary in an empty root needs a mount namespace and chroot: run the tests as root")
	}
	root := t.TempDir()
	for _, dir := range []string{"proc", "sys"} {
		if err := os.Mkdir(filepath.Join(root, dir), 0o555); err != nil {
			t.Fatal(err)
		}
	}
	inRoot := "/" + filepath.Base(binary)
	if err := copyFile(binary, filepath.Join(root, inRoot), 0o755); err != nil {
		t.Fatal(err)
	}
	argv, _ := json.Marshal(append([]string{inRoot}, args...))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = []string{emptyRootEnv + "=" + root, emptyRootArgsEnv + "=" + string(argv)}
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit) && exit.ExitCode() == emptyRootFailed:
		t.Fatalf("setting up the empty root failed:\n%s", out)
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	default:
		t.Fatalf("start %s: %v", os.Args[0], err)
	}
	return "", -1
}

// dockerfile is the parsed Dockerfile.
type dockerfile struct {
	stages   []instructions.Stage
	metaArgs []instructions.ArgCommand
	escape   rune
}

func parseDockerfile(t *testing.T) dockerfile {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("parse Dockerfile: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile warning: %s", w.Short)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("Dockerfile instructions: %v", err)
	}
	return dockerfile{stages: stages, metaArgs: metaArgs, escape: res.EscapeToken}
}

// args are the build arguments in scope at the end of stage i, as a
// native build by BuildKit would set them: declared defaults, with the
// platform arguments BuildKit fills in itself taking precedence.
func (d dockerfile) args(i int) map[string]string {
	automatic := map[string]string{
		"TARGETOS": runtime.GOOS, "TARGETARCH": runtime.GOARCH,
		"BUILDOS": runtime.GOOS, "BUILDARCH": runtime.GOARCH,
		"TARGETPLATFORM": runtime.GOOS + "/" + runtime.GOARCH,
		"BUILDPLATFORM":  runtime.GOOS + "/" + runtime.GOARCH,
	}
	env := map[string]string{}
	declare := func(a instructions.ArgCommand) {
		for _, kv := range a.Args {
			switch v, ok := automatic[kv.Key]; {
			case ok:
				env[kv.Key] = v
			case kv.Value != nil:
				env[kv.Key] = *kv.Value
			default:
				env[kv.Key] = ""
			}
		}
	}
	for _, a := range d.metaArgs {
		declare(a)
	}
	for _, c := range d.stages[i].Commands {
		if a, ok := c.(*instructions.ArgCommand); ok {
			declare(*a)
		}
	}
	return env
}

func (d dockerfile) expand(i int, s string) ([]string, error) {
	var env []string
	for k, v := range d.args(i) {
		env = append(env, k+"="+v)
	}
	return shell.NewLex(d.escape).ProcessWords(s, shell.EnvsFromSlice(env))
}

// buildStep is the build stage's `go build` RUN, taken apart.
type buildStep struct {
	env     []string // the VAR=value words before the command
	args    []string // "go", "build", flags…, package
	output  string   // the -o argument
	pkg     string
	ldflags string
}

func (d dockerfile) buildStep(t *testing.T) buildStep {
	t.Helper()
	var found []buildStep
	for i, st := range d.stages {
		for _, c := range st.Commands {
			run, ok := c.(*instructions.RunCommand)
			if !ok || !run.PrependShell || !strings.Contains(strings.Join(run.CmdLine, " "), "go build") {
				continue
			}
			words, err := d.expand(i, strings.Join(run.CmdLine, " "))
			if err != nil {
				t.Fatalf("expand %q: %v", run.String(), err)
			}
			found = append(found, splitBuild(t, words))
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one RUN with go build in the Dockerfile, found %d", len(found))
	}
	return found[0]
}

func splitBuild(t *testing.T, words []string) buildStep {
	t.Helper()
	var b buildStep
	i := 0
	for ; i < len(words) && isAssignment(words[i]); i++ {
		b.env = append(b.env, words[i])
	}
	b.args = words[i:]
	// A shell list (&&, ;) would run more than this one command, and the
	// test could no longer say that it builds the way the image does.
	for _, w := range b.args {
		if w == "&&" || w == ";" || w == "||" || w == "|" {
			t.Fatalf("the go build RUN must be one command, got %q", words)
		}
	}
	if len(b.args) < 3 || b.args[0] != "go" || b.args[1] != "build" {
		t.Fatalf("the RUN does not start with go build: %q", words)
	}
	for j := 2; j < len(b.args)-1; j++ {
		switch b.args[j] {
		case "-o":
			b.output = b.args[j+1]
		case "-ldflags":
			b.ldflags = b.args[j+1]
		}
	}
	b.pkg = b.args[len(b.args)-1]
	return b
}

func isAssignment(w string) bool {
	name, _, ok := strings.Cut(w, "=")
	if !ok || name == "" {
		return false
	}
	for _, r := range name {
		if r != '_' && (r < 'A' || r > 'Z') && (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// build runs the step in dir with the output and, when pkg is not empty,
// the package replaced.
func (b buildStep) build(dir, output, pkg string) (string, error) {
	args := slices.Clone(b.args)
	for j := range args {
		if args[j] == "-o" {
			args[j+1] = output
		}
	}
	if pkg != "" {
		args[len(args)-1] = pkg
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	// Later entries win, so the Dockerfile's settings override the
	// developer's (a CGO_ENABLED=1 in the environment must not leak in).
	cmd.Env = append(os.Environ(), b.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestDockerfileStages(t *testing.T) {
	d := parseDockerfile(t)
	if len(d.stages) < 2 {
		t.Fatalf("%d stages, want a builder and a final stage", len(d.stages))
	}
	builder := d.stages[0]
	if !strings.HasPrefix(builder.BaseName, "golang:") {
		t.Errorf("builder FROM %s, want a golang image", builder.BaseName)
	}
	final := d.stages[len(d.stages)-1]
	if final.BaseName != "scratch" {
		t.Fatalf("final stage FROM %s, want scratch", final.BaseName)
	}

	step := d.buildStep(t)
	t.Logf("build step: %q %q", step.env, step.args)
	if !slices.Contains(step.env, "CGO_ENABLED=0") {
		t.Errorf("the go build is not run with CGO_ENABLED=0: %q", step.env)
	}
	if !slices.Contains(step.args, "-trimpath") {
		t.Error("go build without -trimpath")
	}
	if flags := strings.Fields(step.ldflags); !slices.Contains(flags, "-s") || !slices.Contains(flags, "-w") {
		t.Errorf("-ldflags %q, want -s and -w", step.ldflags)
	}
	if step.pkg != "./cmd/llm-observer" {
		t.Errorf("builds %s, want ./cmd/llm-observer", step.pkg)
	}
	if step.output == "" {
		t.Fatal("go build without -o")
	}

	// The final stage copies exactly the built binary and the CA bundle,
	// both from the builder, and runs the binary.
	var copies [][2]string
	var entrypoint []string
	ociLabels := map[string]string{}
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.CopyCommand:
			if c.From != builder.Name {
				t.Errorf("%s: copies from %q, want the builder stage %q", c, c.From, builder.Name)
			}
			for _, src := range c.SourcePaths {
				copies = append(copies, [2]string{src, c.DestPath})
			}
		case *instructions.EntrypointCommand:
			if c.PrependShell {
				t.Errorf("%s: shell form; scratch has no shell", c)
			}
			entrypoint = c.CmdLine
		case *instructions.LabelCommand:
			for _, kv := range c.Labels {
				v, err := d.expand(len(d.stages)-1, kv.Value)
				if err != nil {
					t.Fatal(err)
				}
				ociLabels[kv.Key] = strings.Join(v, " ")
			}
		case *instructions.ArgCommand:
		default:
			t.Errorf("final stage: unexpected %s", c)
		}
	}
	wantCopies := [][2]string{{caBundle, caBundle}, {step.output, binaryInImage}}
	slices.SortFunc(copies, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	slices.SortFunc(wantCopies, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	if !slices.Equal(copies, wantCopies) {
		t.Errorf("final stage copies %q, want %q", copies, wantCopies)
	}
	if !slices.Equal(entrypoint, []string{binaryInImage}) {
		t.Errorf("ENTRYPOINT %q, want [%q]", entrypoint, binaryInImage)
	}
	for _, key := range []string{"title", "description", "source", "url", "documentation", "version", "revision"} {
		if v := ociLabels["org.opencontainers.image."+key]; v == "" {
			t.Errorf("label org.opencontainers.image.%s missing or empty", key)
		}
	}
}

// contextCopy copies what `docker build .` would send, so the test builds
// from the same files the image is built from.
func contextCopy(t *testing.T) string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	patterns, err := ignorefile.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	err = filepath.WalkDir(repoRoot, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(repoRoot, path)
		if err != nil || rel == "." {
			return err
		}
		ignored, err := pm.MatchesOrParentMatches(rel)
		if err != nil {
			return err
		}
		switch {
		case ignored && e.IsDir() && !pm.Exclusions():
			return filepath.SkipDir
		case ignored:
			return nil
		case e.IsDir():
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		case e.Type().IsRegular():
			return copyFile(path, filepath.Join(dst, rel), 0o644)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("copy build context: %v", err)
	}
	return dst
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func TestDockerignore(t *testing.T) {
	ctx := contextCopy(t)
	for _, need := range []string{"go.mod", "go.sum", "cmd/llm-observer", "internal"} {
		if _, err := os.Stat(filepath.Join(ctx, need)); err != nil {
			t.Errorf("build context lacks %s", need)
		}
	}
	for _, never := range []string{".git", "bin"} {
		if _, err := os.Stat(filepath.Join(ctx, never)); err == nil {
			t.Errorf("build context holds %s", never)
		}
	}
}

// assertStaticStripped checks what CGO_ENABLED=0 and -ldflags "-s -w"
// promise: no dynamic loader (scratch has none) and no symbol or debug
// tables.
func assertStaticStripped(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s is dynamically linked (%s); scratch has no loader or libc", path, p.Type)
		}
	}
	for _, s := range []string{".symtab", ".debug_info"} {
		if f.Section(s) != nil {
			t.Errorf("%s keeps %s: not stripped", path, s)
		}
	}
}

// TestEmptyRootHarness runs a tiny program built by the Dockerfile's own
// build step in the empty root, to show that the harness gives a process
// /proc and /sys and nothing else, independently of the observer.
func TestEmptyRootHarness(t *testing.T) {
	step := parseDockerfile(t).buildStep(t)
	bin := filepath.Join(t.TempDir(), "emptyroot")
	if out, err := step.build(".", bin, "./testdata/emptyroot"); err != nil {
		t.Fatalf("build the harness program: %v\n%s", err, out)
	}
	assertStaticStripped(t, bin)
	out, code := runInEmptyRoot(t, bin)
	t.Logf("in the empty root:\n%s", out)
	if code != 0 {
		t.Fatalf("exit status %d", code)
	}
	var root []string
	for line := range strings.Lines(out) {
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "root: "); ok {
			root = append(root, name)
		}
	}
	if want := []string{"emptyroot", "proc", "sys"}; !slices.Equal(root, want) {
		t.Errorf("root holds %q, want only %q", root, want)
	}
	for _, want := range []string{"present: /proc/self/exe", "present: /proc/1/cgroup", "present: /sys/kernel/btf/vmlinux"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "/bin/sh") {
		t.Error("a shell is reachable from the empty root")
	}
}

// TestImageBinaryChecksInEmptyRoot builds the observer from the build
// context exactly as the Dockerfile's RUN does, then runs `llm-observer
// check` in a root that holds only the binary, /proc and /sys: what the
// scratch image gives it in a privileged container.
func TestImageBinaryChecksInEmptyRoot(t *testing.T) {
	step := parseDockerfile(t).buildStep(t)
	ctx := contextCopy(t)
	bin := filepath.Join(t.TempDir(), filepath.Base(binaryInImage))
	if out, err := step.build(ctx, bin, ""); err != nil {
		t.Fatalf("%s does not build from the Docker build context with the Dockerfile's step (%q %q): %v\n%s",
			step.pkg, step.env, step.args, err, out)
	}
	assertStaticStripped(t, bin)
	out, code := runInEmptyRoot(t, bin, "check")
	t.Logf("llm-observer check in the empty root:\n%s", out)
	if code != 0 {
		t.Fatalf("llm-observer check exited %d in the empty root", code)
	}
}
