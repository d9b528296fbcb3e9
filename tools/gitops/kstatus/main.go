// Command kstatus prints what sigs.k8s.io/cli-utils' kstatus computes for Kubernetes objects.
//
// It reads one JSON document on stdin: an object, or a List of them (what `kubectl get -o json`
// prints, so live objects can be piped straight from the API server). It writes one JSON
// result per object, in order, as a JSON array: the object's kind and name, and kstatus'
// status, message and the conditions kstatus would add. Used by modelops' tests.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
	Kind       string             `json:"kind"`
	Name       string             `json:"name"`
	Status     string             `json:"status"`
	Message    string             `json:"message"`
	Conditions []status.Condition `json:"conditions"`
	Error      string             `json:"error,omitempty"`
}

func compute(obj *unstructured.Unstructured) result {
	out := result{Kind: obj.GetKind(), Name: obj.GetName()}
	res, err := status.Compute(obj)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	out.Status, out.Message, out.Conditions = res.Status.String(), res.Message, res.Conditions
	return out
}

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kstatus: reading stdin:", err)
		os.Exit(2)
	}
	doc := &unstructured.Unstructured{}
	if err := doc.UnmarshalJSON(data); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus: not a Kubernetes object or List:", err)
		os.Exit(2)
	}
	objects := []*unstructured.Unstructured{doc}
	if doc.IsList() {
		list, err := doc.ToList()
		if err != nil {
			fmt.Fprintln(os.Stderr, "kstatus: bad List:", err)
			os.Exit(2)
		}
		objects = objects[:0]
		for i := range list.Items {
			objects = append(objects, &list.Items[i])
		}
	}
	results := make([]result, 0, len(objects))
	for _, obj := range objects {
		results = append(results, compute(obj))
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus: writing stdout:", err)
		os.Exit(2)
	}
}
