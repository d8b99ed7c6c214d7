"""What the real-node tier (test_real_node*.py and the real_cluster fixture) shares: the node's
name, its fake GPUs, the images imported into it, and the check that it can run here."""

from __future__ import annotations

from support.components import component_unavailable
from warmpool.envtest import BinaryNotFoundError, ControlPlaneBinaries, NodeBinaries
from warmpool.envtest.images import ImagesNotBuiltError, built_image

REAL_NODE = "real-node-0"
REAL_NODE_GPUS = 2
# Imported into the node besides the pause image.
REAL_NODE_IMAGES = ("agent", "triton-cpu")


def require_real_node() -> ControlPlaneBinaries:
    """The control plane's binaries, once the node's binaries and images are known to be
    built; else component_unavailable (skip locally, fail under CI=true)."""
    try:
        binaries = ControlPlaneBinaries.discover()
        NodeBinaries.discover()
        for image in ("pause", *REAL_NODE_IMAGES):
            built_image(image)
    except (BinaryNotFoundError, ImagesNotBuiltError) as error:
        component_unavailable("real node", str(error))
    return binaries
