// Command copy-weights is the entrypoint of a model image: it copies the weights the image holds
// under /weights into the directory given as its only argument (the pod's weights volume), so
// that the runtime container finds the model there. Files are written under a temporary name and
// renamed when complete; a marker file written last lets a restarted init container skip work
// already done. It is a static program so that model images need nothing else (no shell).
// KAITO_WEIGHTS_SOURCE replaces /weights (to run it outside an image, as the tests do).
package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

const (
	defaultSource = "/weights"
	marker        = ".kaito-weights-complete"
)

type totals struct {
	files int
	bytes int64
}

func copyFile(from, to string, mode fs.FileMode) (int64, error) {
	in, err := os.Open(from)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	part := to + ".part"
	out, err := os.OpenFile(part, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode.Perm()|0o200)
	if err != nil {
		return 0, err
	}
	written, err := io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if closeErr := out.Close(); err == nil {
		err = closeErr
	}
	if err == nil {
		// Readable by every user: the runtime container may run as another user than the copier.
		err = os.Chmod(part, mode.Perm()|0o644)
	}
	if err != nil {
		os.Remove(part)
		return 0, err
	}
	return written, os.Rename(part, to)
}

func copyTree(from, to string) (totals, error) {
	var sum totals
	err := filepath.WalkDir(from, func(path string, entry fs.DirEntry, walkErr error) error {
		if walkErr != nil {
			return walkErr
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		target := filepath.Join(to, rel)
		info, err := entry.Info()
		if err != nil {
			return err
		}
		switch {
		case entry.IsDir():
			return os.MkdirAll(target, 0o755)
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			os.Remove(target)
			return os.Symlink(link, target)
		case info.Mode().IsRegular():
			n, err := copyFile(path, target, info.Mode())
			if err != nil {
				return fmt.Errorf("cannot copy %s to %s: %w", path, target, err)
			}
			sum.files++
			sum.bytes += n
			return nil
		default:
			return nil // devices, sockets and pipes are not weights
		}
	})
	return sum, err
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "copy-weights: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) == 2 && os.Args[1] == "-v" {
		fmt.Println("kaito copy-weights 1")
		return
	}
	if len(os.Args) != 2 || os.Args[1] == "" {
		fail("usage: copy-weights <directory>: copies the model image's %s into <directory>", defaultSource)
	}
	dest := os.Args[1]
	source := defaultSource
	if override := os.Getenv("KAITO_WEIGHTS_SOURCE"); override != "" {
		source = override
	}
	if _, err := os.Stat(filepath.Join(dest, marker)); err == nil {
		fmt.Printf("Weights already complete in %s (marker %s); nothing copied\n", dest, marker)
		return
	}
	entries, err := os.ReadDir(source)
	if err != nil || len(entries) == 0 {
		if err == nil {
			err = errors.New("it is empty")
		}
		fail("this model image holds no weights under %s (%v); rebuild the image with the model's files there", source, err)
	}
	started := time.Now()
	if err := os.MkdirAll(dest, 0o755); err != nil {
		fail("cannot create %s: %v", dest, err)
	}
	sum, err := copyTree(source, dest)
	if err != nil {
		fail("%v (is the weights volume mounted at %s, writable and large enough?)", err, dest)
	}
	if err := os.WriteFile(filepath.Join(dest, marker), []byte(started.UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		fail("cannot write the completion marker in %s: %v", dest, err)
	}
	fmt.Printf("Copied %d files (%d bytes) from %s to %s in %.1f s\n",
		sum.files, sum.bytes, source, dest, time.Since(started).Seconds())
}
