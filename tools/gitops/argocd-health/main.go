// Command argocd-health prints the health Argo CD itself assigns to Kubernetes objects.
//
// It takes the path of an argocd-cm ConfigMap (YAML) and reads one JSON document on stdin: an
// object, or a List of them (what `kubectl get -o json` prints). The ConfigMap goes through
// Argo CD's own settings manager (over a fake clientset, as `argocd admin settings
// resource-overrides health --argocd-cm-path` does), and each object through gitops-engine's
// health.GetResourceHealth with those overrides: Argo CD's Go checks, its built-in Lua scripts
// and the argocd-cm scripts, in Argo CD's order. One JSON result per object, as a JSON array;
// `status` is empty when Argo CD has no health check for the kind. Used by modelops' tests.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	healthutil "github.com/argoproj/argo-cd/gitops-engine/v3/pkg/health"
	"github.com/argoproj/argo-cd/v3/common"
	"github.com/argoproj/argo-cd/v3/util/lua"
	"github.com/argoproj/argo-cd/v3/util/settings"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"
)

type result struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
	Error   string `json:"error,omitempty"`
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "argocd-health: "+format+"\n", args...)
	os.Exit(2)
}

func settingsMeta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "default",
		Labels: map[string]string{"app.kubernetes.io/part-of": "argocd"}}
}

func overrides(cmPath string) lua.ResourceHealthOverrides {
	data, err := os.ReadFile(cmPath)
	if err != nil {
		fail("%v", err)
	}
	cm := &corev1.ConfigMap{}
	if err := yaml.Unmarshal(data, cm); err != nil {
		fail("%s: %v", cmPath, err)
	}
	cm.ObjectMeta = settingsMeta(common.ArgoCDConfigMapName)
	secret := &corev1.Secret{ObjectMeta: settingsMeta(common.ArgoCDSecretName),
		Data: map[string][]byte{"admin.password": []byte("test"), "server.secretkey": []byte("test")}}
	manager := settings.NewSettingsManager(context.Background(), fake.NewClientset(secret, cm), "default")
	if err := manager.ResyncInformers(); err != nil {
		fail("settings: %v", err)
	}
	found, err := manager.GetResourceOverrides()
	if err != nil {
		fail("%s: resource overrides: %v", cmPath, err)
	}
	return lua.ResourceHealthOverrides(found)
}

func objects(data []byte) []*unstructured.Unstructured {
	doc := &unstructured.Unstructured{}
	if err := doc.UnmarshalJSON(data); err != nil {
		fail("stdin is not a Kubernetes object or List: %v", err)
	}
	if !doc.IsList() {
		return []*unstructured.Unstructured{doc}
	}
	list, err := doc.ToList()
	if err != nil {
		fail("bad List: %v", err)
	}
	out := make([]*unstructured.Unstructured, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, &list.Items[i])
	}
	return out
}

func main() {
	if len(os.Args) != 2 {
		fail("usage: argocd-health ARGOCD_CM_YAML < objects.json")
	}
	found := overrides(os.Args[1])
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("reading stdin: %v", err)
	}
	results := []result{}
	for _, obj := range objects(data) {
		out := result{Kind: obj.GetKind(), Name: obj.GetName()}
		health, err := healthutil.GetResourceHealth(obj, found)
		switch {
		case err != nil:
			out.Error = err.Error()
		case health != nil:
			out.Status, out.Message = string(health.Status), health.Message
		}
		results = append(results, out)
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		fail("writing stdout: %v", err)
	}
}
