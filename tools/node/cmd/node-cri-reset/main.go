// Command node-cri-reset stops and removes every pod sandbox a CRI runtime holds, the way the
// kubelet would tear pods down: containers are stopped, the CNI plugins are called to release
// each pod's network (veth, IP lease, iptables rules), then the sandbox is removed. The dev
// node runs it before stopping containerd, so `down` leaves no container, veth or lease behind.
//
//	node-cri-reset -endpoint unix:///path/to/containerd.sock [-timeout 60s]
//
// It prints one line per sandbox and a summary; the exit code is 1 if any sandbox remains.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func main() {
	endpoint := flag.String("endpoint", "", "CRI endpoint, unix:///path/to/socket")
	timeout := flag.Duration("timeout", time.Minute, "time allowed for the whole reset")
	flag.Parse()
	if *endpoint == "" {
		fmt.Fprintln(os.Stderr, "node-cri-reset: -endpoint is required (unix:///path/to/socket)")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := reset(ctx, *endpoint); err != nil {
		fmt.Fprintf(os.Stderr, "node-cri-reset: %v\n", err)
		os.Exit(1)
	}
}

func reset(ctx context.Context, endpoint string) error {
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", endpoint, err)
	}
	defer conn.Close()
	runtime := runtimeapi.NewRuntimeServiceClient(conn)
	listed, err := runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("list pod sandboxes: %w", err)
	}
	failed := 0
	for _, sandbox := range listed.Items {
		name := sandbox.GetMetadata().GetNamespace() + "/" + sandbox.GetMetadata().GetName()
		if err := removeSandbox(ctx, runtime, sandbox.Id); err != nil {
			failed++
			fmt.Printf("%s %s: %v\n", sandbox.Id[:12], name, err)
			continue
		}
		fmt.Printf("%s %s: removed\n", sandbox.Id[:12], name)
	}
	fmt.Printf("removed %d of %d pod sandboxes\n", len(listed.Items)-failed, len(listed.Items))
	if failed > 0 {
		return fmt.Errorf("%d pod sandboxes could not be removed", failed)
	}
	return nil
}

func removeSandbox(ctx context.Context, runtime runtimeapi.RuntimeServiceClient, id string) error {
	if _, err := runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	if _, err := runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	return nil
}
