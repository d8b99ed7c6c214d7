// Command kube-node is a multi-call binary for a real local node: kubelet, kube-proxy
// and fake-gpu-plugin, chosen by the name it is invoked under (symlinks) or by its
// first argument ("kube-node kubelet --version"). It is built with hack/k8s/go.mod,
// so the node runs exactly the Kubernetes version of the control plane.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

var commands = map[string]func() *cobra.Command{
	"kubelet":         func() *cobra.Command { return kubelet.NewKubeletCommand(context.Background()) },
	"kube-proxy":      proxy.NewProxyCommand,
	"fake-gpu-plugin": newFakeGPUPluginCommand,
}

func main() {
	name := filepath.Base(os.Args[0])
	if _, ok := commands[name]; !ok && len(os.Args) > 1 {
		// "kube-node <command> args...": shift the command name into argv[0].
		name = os.Args[1]
		os.Args = os.Args[1:]
	}
	newCommand, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "usage: kube-node {kubelet|kube-proxy|fake-gpu-plugin} [args]\n")
		os.Exit(2)
	}
	os.Exit(cli.Run(newCommand()))
}
