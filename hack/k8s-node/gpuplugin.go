// fake-gpu-plugin: a device plugin that speaks the kubelet's real device-plugin API
// (k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1) for GPUs that do not exist.
//
// It registers nvidia.com/gpu with the kubelet, lists --count healthy devices named
// like NVIDIA's (GPU-fake-<node>-<i>) and answers Allocate the way NVIDIA's plugin does
// for a container runtime without the NVIDIA hook: the environment variable
// NVIDIA_VISIBLE_DEVICES with the allocated IDs, so a test can see which devices the
// kubelet's allocation path gave a container. No device node is mounted: there is none.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

type fakeGPUPlugin struct {
	pluginapi.UnimplementedDevicePluginServer
	devices []*pluginapi.Device
}

func (p *fakeGPUPlugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{}, nil
}

func (p *fakeGPUPlugin) ListAndWatch(_ *pluginapi.Empty, stream pluginapi.DevicePlugin_ListAndWatchServer) error {
	if err := stream.Send(&pluginapi.ListAndWatchResponse{Devices: p.devices}); err != nil {
		return err
	}
	// The devices never change; hold the stream open until the kubelet closes it.
	<-stream.Context().Done()
	return nil
}

func (p *fakeGPUPlugin) GetPreferredAllocation(context.Context, *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	return &pluginapi.PreferredAllocationResponse{}, nil
}

func (p *fakeGPUPlugin) Allocate(_ context.Context, request *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	response := &pluginapi.AllocateResponse{}
	for _, container := range request.ContainerRequests {
		fmt.Printf("allocate %s\n", strings.Join(container.DevicesIds, ","))
		response.ContainerResponses = append(response.ContainerResponses, &pluginapi.ContainerAllocateResponse{
			Envs: map[string]string{"NVIDIA_VISIBLE_DEVICES": strings.Join(container.DevicesIds, ",")},
		})
	}
	return response, nil
}

func (p *fakeGPUPlugin) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}

// serveOnce serves the plugin on socket and registers it with the kubelet; it returns
// when the socket is removed (the kubelet deletes every plugin socket when it restarts,
// and the plugin must then register again).
func serveOnce(plugin *fakeGPUPlugin, dir, socket, resource string) error {
	path := filepath.Join(dir, socket)
	_ = os.Remove(path)
	listener, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	server := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(server, plugin)
	go func() { _ = server.Serve(listener) }()
	defer server.Stop()

	conn, err := grpc.NewClient("unix://"+filepath.Join(dir, "kubelet.sock"),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     socket,
		ResourceName: resource,
		Options:      &pluginapi.DevicePluginOptions{},
	})
	cancel()
	_ = conn.Close()
	if err != nil {
		return fmt.Errorf("register with the kubelet: %w", err)
	}
	fmt.Printf("registered %s with %d devices\n", resource, len(plugin.devices))
	for {
		time.Sleep(time.Second)
		if _, err := os.Stat(path); err != nil {
			return nil
		}
	}
}

func newFakeGPUPluginCommand() *cobra.Command {
	var count int
	var node, dir, resource string
	command := &cobra.Command{
		Use:   "fake-gpu-plugin",
		Short: "a device plugin advertising GPUs that do not exist, through the kubelet's real API",
		RunE: func(*cobra.Command, []string) error {
			plugin := &fakeGPUPlugin{}
			for i := 0; i < count; i++ {
				plugin.devices = append(plugin.devices, &pluginapi.Device{
					ID: fmt.Sprintf("GPU-fake-%s-%d", node, i), Health: pluginapi.Healthy,
				})
			}
			for {
				if err := serveOnce(plugin, dir, "fake-gpu.sock", resource); err != nil {
					// The kubelet may not be up yet, or is restarting: try again.
					fmt.Fprintf(os.Stderr, "fake-gpu-plugin: %v\n", err)
				}
				time.Sleep(time.Second)
			}
		},
	}
	command.Flags().IntVar(&count, "count", 2, "devices to advertise")
	command.Flags().StringVar(&node, "node", "node", "node name, part of each device ID")
	command.Flags().StringVar(&dir, "dir", pluginapi.DevicePluginPath, "the kubelet's device-plugin directory")
	command.Flags().StringVar(&resource, "resource", "nvidia.com/gpu", "extended resource name")
	return command
}
