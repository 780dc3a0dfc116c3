// tekton-bundle-push (test tool) builds a Tekton bundle (one layer per resource, each a tar holding the
// resource's YAML, annotated dev.tekton.image.{apiVersion,kind,name}) and pushes it.
//
//	tekton-bundle-push REF FILE.yaml [FILE.yaml...]   -> prints REF@sha256:...
//
// Plain HTTP is used automatically for 127.0.0.1:PORT / localhost:PORT registries.
package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"sigs.k8s.io/yaml"
)

type meta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "tekton-bundle-push:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: tekton-bundle-push REF FILE.yaml...")
	}
	ref, err := name.ParseReference(args[0])
	if err != nil {
		return err
	}
	img := empty.Image
	n := 0
	for _, f := range args[1:] {
		raw, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		for _, doc := range docSep.Split(string(raw), -1) {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			var m meta
			if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			if m.APIVersion == "" || m.Kind == "" || m.Metadata.Name == "" {
				return fmt.Errorf("%s: a document lacks apiVersion, kind or metadata.name", f)
			}
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			if err := tw.WriteHeader(&tar.Header{Name: m.Metadata.Name, Mode: 0o600, Size: int64(len(doc)), Typeflag: tar.TypeReg}); err != nil {
				return err
			}
			if _, err := tw.Write([]byte(doc)); err != nil {
				return err
			}
			if err := tw.Close(); err != nil {
				return err
			}
			layer, err := tarball.LayerFromReader(&buf)
			if err != nil {
				return err
			}
			img, err = mutate.Append(img, mutate.Addendum{Layer: layer, Annotations: map[string]string{
				"dev.tekton.image.apiVersion": m.APIVersion,
				"dev.tekton.image.kind":       strings.TrimSuffix(strings.ToLower(m.Kind), "s"),
				"dev.tekton.image.name":       m.Metadata.Name,
			}})
			if err != nil {
				return err
			}
			n++
		}
	}
	if n == 0 || n > 20 {
		return fmt.Errorf("a bundle holds 1 to 20 resources, got %d", n)
	}
	if err := remote.Write(ref, img); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Println(ref.Context().Digest(d.String()).String())
	return nil
}
