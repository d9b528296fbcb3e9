// Command coredns is CoreDNS with the plugins of kubeadm's default Corefile, which a kind node
// runs: errors, health, ready, kubernetes, prometheus (metrics), forward, cache, loop, reload and
// loadbalance. The dev node's smaller build (tools/coredns) lacks forward, loop, reload,
// loadbalance and metrics, and would refuse that Corefile.
package main

import (
	// Linking a plugin registers it; core/dnsserver keeps upstream's directive order.
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"

	"github.com/coredns/coredns/coremain"
)

func main() {
	coremain.Run()
}
