// Command kubeadm is upstream's main (cmd/kubeadm/kubeadm.go), built from the pinned
// k8s.io/kubernetes module; kind runs it inside its node to bootstrap the cluster.
package main

import (
	"k8s.io/kubernetes/cmd/kubeadm/app"
	utilerrors "k8s.io/kubernetes/cmd/kubeadm/app/util/errors"
)

func main() {
	utilerrors.HandleError(app.Run())
}
