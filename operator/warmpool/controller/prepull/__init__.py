"""The pre-pull reconciler: label the nodes that hold a verified copy of a pool's weights, with
a finalizer that guarantees the labels' cleanup (docs/prepull-and-headroom.md)."""
