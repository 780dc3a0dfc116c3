// Command tekton-validate applies Tekton's own admission to PipelineRuns: for each object of the
// JSON array on stdin it decodes a tekton.dev/v1 PipelineRun (refusing fields Tekton does not
// know), then runs Tekton's SetDefaults and Validate as its webhook does on CREATE. It prints one
// JSON line per object ({"name", "unknownFields", "errors"}) and exits 1 if any was refused.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"knative.dev/pkg/apis"
)

type result struct {
	Name          string `json:"name"`
	UnknownFields string `json:"unknownFields,omitempty"`
	Errors        string `json:"errors,omitempty"`
}

func main() {
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reading stdin:", err)
		os.Exit(2)
	}
	var objects []json.RawMessage
	if err := json.Unmarshal(input, &objects); err != nil {
		fmt.Fprintln(os.Stderr, "stdin must be a JSON array of PipelineRuns:", err)
		os.Exit(2)
	}
	refused := false
	out := json.NewEncoder(os.Stdout)
	for i, raw := range objects {
		r := check(raw)
		if r.Name == "" {
			r.Name = fmt.Sprintf("#%d", i)
		}
		if r.UnknownFields != "" || r.Errors != "" {
			refused = true
		}
		_ = out.Encode(r)
	}
	if refused {
		os.Exit(1)
	}
}

func check(raw json.RawMessage) result {
	var pr v1.PipelineRun
	strict := json.NewDecoder(bytes.NewReader(raw))
	strict.DisallowUnknownFields()
	var r result
	if err := strict.Decode(&pr); err != nil {
		r.UnknownFields = err.Error()
		// Decode leniently to validate the rest all the same.
		pr = v1.PipelineRun{}
		if err := json.Unmarshal(raw, &pr); err != nil {
			r.Errors = err.Error()
			return r
		}
	}
	r.Name = pr.Name
	if pr.APIVersion != "tekton.dev/v1" || pr.Kind != "PipelineRun" {
		r.Errors = fmt.Sprintf("apiVersion/kind %s/%s, want tekton.dev/v1/PipelineRun", pr.APIVersion, pr.Kind)
		return r
	}
	ctx := apis.WithinCreate(context.Background())
	pr.SetDefaults(ctx)
	if fe := pr.Validate(ctx); fe != nil {
		r.Errors = fe.Error()
	}
	return r
}
