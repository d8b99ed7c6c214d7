"""High availability: leader election on a coordination.k8s.io Lease (client-go's algorithm),
the standby's /healthz, and `warmpool operator --leader-elect` (docs/ha.md)."""
