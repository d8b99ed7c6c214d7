"""warmpool.render: pure builders from an InferencePool to its Kubernetes objects.

No I/O, no kopf, no clients, no clock: the same pool and config render the same dicts.
`build_children` is the operator's entry point; the other names are for the operator's
bookkeeping (node labels, names) and for tests.
"""

from warmpool.render.children import (
    CHILD_KINDS,
    build_children,
    check_pool_name,
    children_selector,
)
from warmpool.render.common import RenderError
from warmpool.render.config import RenderConfig
from warmpool.render.endpoints import ActivatorEndpoints, activator_slice_name
from warmpool.render.labels import (
    MODEL_FINGERPRINT_ANNOTATION,
    SPEC_HASH_ANNOTATION,
    component_selector,
    model_fingerprint,
    prepull_node_label_key,
    server_selector,
)
from warmpool.render.service import ServiceMode

__all__ = [
    "CHILD_KINDS",
    "MODEL_FINGERPRINT_ANNOTATION",
    "SPEC_HASH_ANNOTATION",
    "ActivatorEndpoints",
    "RenderConfig",
    "RenderError",
    "ServiceMode",
    "activator_slice_name",
    "build_children",
    "check_pool_name",
    "children_selector",
    "component_selector",
    "model_fingerprint",
    "prepull_node_label_key",
    "server_selector",
]
