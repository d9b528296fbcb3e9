// Command coredns is CoreDNS with only the plugins the modelops dev node uses: cluster DNS
// from the Kubernetes API (kubernetes), plus bind, errors, health, ready, cache and log. Nothing is
// forwarded upstream (no `forward` plugin is linked), so names outside cluster.local never
// leave the machine.
package main

import (
	// Linking a plugin registers it; core/dnsserver keeps upstream's directive order.
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"

	"github.com/coredns/coredns/coremain"
)

func main() {
	coremain.Run()
}
