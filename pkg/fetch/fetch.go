// Package fetch gets recipe sources (local paths, http(s) URLs, git repositories) into the content-addressed store.
//
// Remote sources go through hashicorp/go-getter with an allow-list of getters,
// timeouts, a size limit, no symlinks, bounded decompression and no path
// traversal. A pinned sha256 is checked before anything is stored, and a
// source whose pinned content is already in the store is served from it
// without touching the network. Offline mode never touches the network.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	getter "github.com/hashicorp/go-getter/v2"
	"github.com/lora-dev/lora/pkg/store"
	"github.com/lora-dev/lora/pkg/version"
)

// OfflineEnv names the environment variable that turns on offline mode when set to 1 or true.
const OfflineEnv = "LORA_OFFLINE"

// Defaults for Options.
const (
	DefaultMaxBytes = 32 << 30 // 32 GiB: larger than any model lora can train
	DefaultTimeout  = 2 * time.Hour
	DefaultMaxFiles = 100000 // files in a fetched tree or archive
)

// OfflineFromEnv reports whether LORA_OFFLINE asks for offline mode.
func OfflineFromEnv() bool {
	switch strings.ToLower(os.Getenv(OfflineEnv)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// Options configure Get.
type Options struct {
	Store    *store.Store
	Dir      string        // base directory for relative local paths (the recipe's directory)
	Offline  bool          // never touch the network
	MaxBytes int64         // size limit of one file or tree; 0 means DefaultMaxBytes
	MaxFiles int           // file-count limit of a tree or archive; 0 means DefaultMaxFiles
	Timeout  time.Duration // limit on one download; 0 means DefaultTimeout
	Log      io.Writer     // progress lines; nil discards
	// HTTPClient replaces the hardened default client (tests use it for TLS servers).
	HTTPClient *http.Client
}

// Result describes fetched content in the store.
type Result struct {
	Source string // as written in the recipe
	Path   string // the blob (file) or tree (directory) in the store; read-only
	SHA256 string // content sha256 (file) or store.TreeSum (tree)
	Size   int64  // bytes (total for a tree)
	Tree   bool   // a directory, not a file
	Local  bool   // read from a local path
	Cached bool   // served from the store without downloading
	Name   string // a file name for the content: the source's last path element
}

// ChecksumError reports content whose sha256 differs from the pinned one. Its exit code is 4.
type ChecksumError struct {
	Source   string
	Expected string
	Actual   string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("checksum mismatch for %s: expected sha256 %s, got %s (the source changed or the pin is wrong; if the new content is right, pin sha256: %s)",
		e.Source, e.Expected, e.Actual, e.Actual)
}

// ExitCode is 4: checksum mismatch.
func (e *ChecksumError) ExitCode() int { return 4 }

// MissingError reports a remote source that offline mode cannot serve.
type MissingError struct {
	Source string
	SHA256 string // the pin, if any
}

func (e *MissingError) Error() string {
	if e.SHA256 == "" {
		return fmt.Sprintf("offline: source %s is not in the cache and has no sha256 pin; pin it with sha256: in the recipe, then on a machine that has the file run `lora cache import FILE`", e.Source)
	}
	return fmt.Sprintf("offline: source %s is not in the cache; get the file on a connected machine and run `lora cache import FILE` (the file must have sha256 %s), or run without --offline and %s unset", e.Source, e.SHA256, OfflineEnv)
}

// ErrNotAllowed is wrapped by errors for sources whose protocol is not on the allow-list.
var ErrNotAllowed = errors.New("source protocol not allowed")

var forcedRe = regexp.MustCompile(`^([A-Za-z0-9]+)::(.+)$`)
var schemeRe = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*)://`)

// IsLocal reports whether source names a local path (no URL scheme and no
// "getter::" prefix), or a file:// URL.
func IsLocal(source string) bool {
	if forcedRe.MatchString(source) {
		return false
	}
	if m := schemeRe.FindStringSubmatch(source); m != nil {
		return strings.EqualFold(m[1], "file")
	}
	return true
}

// LocalPath resolves a local source against dir.
func LocalPath(source, dir string) string {
	p := source
	if m := schemeRe.FindStringSubmatch(source); m != nil && strings.EqualFold(m[1], "file") {
		if u, err := url.Parse(source); err == nil {
			p = u.Path
		}
	}
	if strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			p = filepath.Join(home, p[2:])
		}
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	return filepath.Clean(p)
}

// protocol returns the getter a remote source uses, or an error naming the allowed ones.
func protocol(source string) (string, error) {
	if m := forcedRe.FindStringSubmatch(source); m != nil {
		switch strings.ToLower(m[1]) {
		case "git":
			return "git", nil
		case "http", "https":
			return "http", nil
		case "s3":
			return "", fmt.Errorf("%w: %s: s3 sources are not built into this lora; download the object and run `lora cache import FILE`", ErrNotAllowed, source)
		}
		return "", fmt.Errorf("%w: %s: %q is not one of the allowed getters (file paths, http, https, git::)", ErrNotAllowed, source, m[1])
	}
	if m := schemeRe.FindStringSubmatch(source); m != nil {
		switch strings.ToLower(m[1]) {
		case "http", "https":
			return "http", nil
		case "git", "ssh":
			return "git", nil
		case "s3":
			return "", fmt.Errorf("%w: %s: s3 sources are not built into this lora; download the object and run `lora cache import FILE`", ErrNotAllowed, source)
		}
		return "", fmt.Errorf("%w: %s: scheme %q is not one of the allowed (file paths, http, https, git::)", ErrNotAllowed, source, m[1])
	}
	return "", fmt.Errorf("%w: %s: not a URL", ErrNotAllowed, source)
}

// Name returns a file name for a source: the last element of its path,
// without query, or "source" when there is none.
func Name(source string) string {
	s := source
	if m := forcedRe.FindStringSubmatch(s); m != nil {
		s = m[2]
	}
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		s = u.Path
	}
	s = strings.TrimSuffix(s, "/")
	if i := strings.Index(s, "//"); i > 0 && !IsLocal(source) {
		s = s[:i] // go-getter subdir syntax
	}
	base := filepath.Base(filepath.FromSlash(s))
	base = strings.TrimSuffix(base, ".git")
	if base == "." || base == "/" || base == "" || base == ".." {
		return "source"
	}
	return base
}

func (o *Options) defaults() {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxFiles <= 0 {
		o.MaxFiles = DefaultMaxFiles
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// Get fetches source into the store and checks it against want (a sha256,
// or "" for no pin). A local path is always read and hashed; a remote source
// whose pinned content is in the store is not downloaded again.
func Get(ctx context.Context, source, want string, opt Options) (*Result, error) {
	opt.defaults()
	if opt.Store == nil {
		return nil, errors.New("fetch: no store")
	}
	want = strings.ToLower(strings.TrimSpace(want))
	if want != "" && !store.ValidSum(want) {
		return nil, fmt.Errorf("fetch %s: sha256 %q is not 64 hexadecimal digits", source, want)
	}
	var (
		res *Result
		err error
	)
	if IsLocal(source) {
		res, err = getLocal(source, want, opt)
	} else {
		res, err = getRemote(ctx, source, want, opt)
	}
	if err != nil {
		return nil, err
	}
	res.Source = source
	if res.Name == "" {
		res.Name = Name(source)
	}
	if want != "" && res.SHA256 != want {
		return nil, &ChecksumError{Source: source, Expected: want, Actual: res.SHA256}
	}
	if !res.Local {
		if err := opt.Store.RecordSource(store.Source{Source: source, SHA256: res.SHA256, Size: res.Size, Tree: res.Tree}); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func getLocal(source, want string, opt Options) (*Result, error) {
	p := LocalPath(source, opt.Dir)
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("fetch %s: file %s does not exist (local paths are relative to the recipe's directory)", source, p)
		}
		return nil, fmt.Errorf("fetch %s: %w", source, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", source, err)
	}
	res := &Result{Local: true, Name: filepath.Base(p)}
	if fi.IsDir() {
		files, err := store.ListTree(real)
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", source, err)
		}
		if err := checkTree(files, opt); err != nil {
			return nil, fmt.Errorf("fetch %s: %w", source, err)
		}
		res.Tree = true
		res.SHA256 = store.TreeSum(files)
		for _, f := range files {
			res.Size += f.Size
		}
		if want != "" && res.SHA256 != want {
			return res, nil // Get reports the mismatch
		}
		if _, ok := opt.Store.Tree(res.SHA256); !ok {
			if _, err := opt.Store.PutTree(real); err != nil {
				return nil, fmt.Errorf("fetch %s: %w", source, err)
			}
		}
		res.Path, _ = opt.Store.Tree(res.SHA256)
		return res, nil
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("fetch %s: %s is not a regular file", source, p)
	}
	if fi.Size() > opt.MaxBytes {
		return nil, fmt.Errorf("fetch %s: %w (%d > %d bytes)", source, store.ErrTooLarge, fi.Size(), opt.MaxBytes)
	}
	sum, size, err := store.HashFile(real)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", source, err)
	}
	res.SHA256, res.Size = sum, size
	if want != "" && sum != want {
		return res, nil
	}
	if path, ok := opt.Store.Blob(sum); ok {
		res.Path, res.Cached = path, true
		return res, nil
	}
	got, _, err := opt.Store.PutFile(real, opt.MaxBytes)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", source, err)
	}
	if got != sum {
		return nil, fmt.Errorf("fetch %s: the file changed while it was read; try again", source)
	}
	res.Path = opt.Store.BlobPath(sum)
	return res, nil
}

func checkTree(files []store.TreeFile, opt Options) error {
	if len(files) > opt.MaxFiles {
		return fmt.Errorf("%d files is more than the limit of %d", len(files), opt.MaxFiles)
	}
	var total int64
	for _, f := range files {
		total += f.Size
	}
	if total > opt.MaxBytes {
		return fmt.Errorf("%w (%d > %d bytes)", store.ErrTooLarge, total, opt.MaxBytes)
	}
	return nil
}

func getRemote(ctx context.Context, source, want string, opt Options) (*Result, error) {
	proto, err := protocol(source)
	if err != nil {
		return nil, err
	}
	// Served from the store: pinned content already present.
	if want != "" {
		if p, ok := opt.Store.Blob(want); ok {
			fi, _ := os.Stat(p)
			return &Result{Path: p, SHA256: want, Size: fi.Size(), Cached: true}, nil
		}
		if p, ok := opt.Store.Tree(want); ok {
			return &Result{Path: p, SHA256: want, Tree: true, Cached: true}, nil
		}
	}
	if opt.Offline {
		if want == "" {
			// Unpinned: the last content seen for this source is the best offline answer.
			if src, ok := opt.Store.LookupSource(source); ok {
				if p, ok := opt.Store.Blob(src.SHA256); ok && !src.Tree {
					return &Result{Path: p, SHA256: src.SHA256, Size: src.Size, Cached: true}, nil
				}
				if p, ok := opt.Store.Tree(src.SHA256); ok && src.Tree {
					return &Result{Path: p, SHA256: src.SHA256, Size: src.Size, Tree: true, Cached: true}, nil
				}
			}
		}
		return nil, &MissingError{Source: source, SHA256: want}
	}
	fmt.Fprintf(opt.Log, "fetching %s\n", redact(source))
	tmp, err := opt.Store.TempDir("download")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	ctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	client := newClient(proto, opt)
	src := source
	if proto == "http" {
		src = noAutoArchive(src)
	}
	dst := filepath.Join(tmp, "get")
	req := &getter.Request{Src: src, Dst: dst, Pwd: tmp, GetMode: getter.ModeAny, DisableSymlinks: true, Umask: 0o022,
		ProgressListener: &progress{w: opt.Log, every: 5 * time.Second, limit: opt.MaxBytes}}
	got, err := client.Get(ctx, req)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return nil, fmt.Errorf("fetch %s: timed out after %s", redact(source), opt.Timeout)
		}
		if errors.Is(err, io.ErrShortWrite) {
			return nil, fmt.Errorf("fetch %s: %w (more than %d bytes) or the connection was cut short", redact(source), store.ErrTooLarge, opt.MaxBytes)
		}
		return nil, fmt.Errorf("fetch %s: %w", redact(source), err)
	}
	fi, err := os.Lstat(got.Dst)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", redact(source), err)
	}
	if fi.IsDir() {
		os.RemoveAll(filepath.Join(got.Dst, ".git"))
		files, err := store.ListTree(got.Dst)
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", redact(source), err)
		}
		if err := checkTree(files, opt); err != nil {
			return nil, fmt.Errorf("fetch %s: %w", redact(source), err)
		}
		res := &Result{Tree: true, SHA256: store.TreeSum(files)}
		for _, f := range files {
			res.Size += f.Size
		}
		if want != "" && res.SHA256 != want {
			return res, nil
		}
		if _, err := opt.Store.PutTree(got.Dst); err != nil {
			return nil, err
		}
		res.Path, _ = opt.Store.Tree(res.SHA256)
		return res, nil
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("fetch %s: download is not a regular file", redact(source))
	}
	if fi.Size() > opt.MaxBytes {
		return nil, fmt.Errorf("fetch %s: %w (more than %d bytes)", redact(source), store.ErrTooLarge, opt.MaxBytes)
	}
	sum, size, err := store.HashFile(got.Dst)
	if err != nil {
		return nil, err
	}
	res := &Result{SHA256: sum, Size: size, Name: filepath.Base(got.Dst)}
	if want != "" && sum != want {
		return res, nil
	}
	if _, _, err := opt.Store.PutFile(got.Dst, opt.MaxBytes); err != nil {
		return nil, fmt.Errorf("fetch %s: %w", redact(source), err)
	}
	res.Path = opt.Store.BlobPath(sum)
	fmt.Fprintf(opt.Log, "fetched %s (%d bytes, sha256 %s)\n", redact(source), size, sum)
	return res, nil
}

// noAutoArchive stops go-getter from unpacking a URL just because its name
// ends in .tar.gz or .zip: unpacking happens only when the source asks for it
// with ?archive=TYPE, so that a pinned sha256 always names what the URL serves
// or, with archive=, the unpacked tree.
func noAutoArchive(src string) string {
	u, err := url.Parse(strings.TrimPrefix(strings.TrimPrefix(src, "http::"), "https::"))
	if err != nil {
		return src
	}
	q := u.Query()
	if q.Has("archive") {
		return src
	}
	q.Set("archive", "false")
	u.RawQuery = q.Encode()
	return u.String()
}

// redact hides userinfo in URLs printed in logs and errors.
func redact(source string) string {
	if u, err := url.Parse(source); err == nil && u.User != nil {
		u.User = url.User("xxx")
		return u.String()
	}
	return source
}

// newClient builds a go-getter client with only the getter for proto, with
// timeouts, size and decompression limits.
func newClient(proto string, opt Options) *getter.Client {
	var g getter.Getter
	switch proto {
	case "git":
		g = &getter.GitGetter{Timeout: opt.Timeout}
	default:
		hc := opt.HTTPClient
		if hc == nil {
			hc = hardenedHTTPClient()
		}
		g = &getter.HttpGetter{
			Client:                hc,
			Header:                http.Header{"User-Agent": []string{"lora/" + version.Version}},
			Netrc:                 false,
			XTerraformGetDisabled: true,
			HeadFirstTimeout:      30 * time.Second,
			ReadTimeout:           opt.Timeout,
			MaxBytes:              opt.MaxBytes + 1, // one more byte tells "too large" from "exactly the limit"
		}
	}
	return &getter.Client{
		Getters:         []getter.Getter{g},
		Decompressors:   getter.LimitedDecompressors(opt.MaxFiles, opt.MaxBytes),
		DisableSymlinks: true,
	}
}

func hardenedHTTPClient() *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   30 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          4,
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("more than 10 redirects")
			}
			if req.URL.Scheme != "https" && req.URL.Scheme != "http" {
				return fmt.Errorf("redirect to %s refused", req.URL.Scheme)
			}
			if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
				return errors.New("redirect from https to http refused")
			}
			return nil
		},
	}
}

// progress prints a line every so often while a download runs, and
// enforces the size limit: go-getter hands the listener the raw response
// body, bypassing its own MaxBytes reader, so the limit must live here too.
type progress struct {
	w     io.Writer
	every time.Duration
	limit int64
}

func (p *progress) TrackProgress(src string, current, total int64, stream io.ReadCloser) io.ReadCloser {
	return &progressReader{ReadCloser: stream, p: p, name: src, n: current, total: total, start: time.Now(), last: time.Now()}
}

type progressReader struct {
	io.ReadCloser
	p           *progress
	name        string
	n, total    int64
	start, last time.Time
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.ReadCloser.Read(b)
	r.n += int64(n)
	if r.p.limit > 0 && r.n > r.p.limit {
		return n, fmt.Errorf("%s: %w (more than %d bytes)", r.name, store.ErrTooLarge, r.p.limit)
	}
	if now := time.Now(); now.Sub(r.last) >= r.p.every {
		r.last = now
		rate := float64(r.n) / now.Sub(r.start).Seconds() / (1 << 20)
		if r.total > 0 {
			fmt.Fprintf(r.p.w, "downloading %s: %.1f of %.1f MiB (%.1f MiB/s)\n", r.name, float64(r.n)/(1<<20), float64(r.total)/(1<<20), rate)
		} else {
			fmt.Fprintf(r.p.w, "downloading %s: %.1f MiB (%.1f MiB/s)\n", r.name, float64(r.n)/(1<<20), rate)
		}
	}
	return n, err
}
