"""The chart's own pods get no Service environment variables.

Found by running the chart on a real node (`make demo`): the kubelet injects
`<SERVICE>_PORT=tcp://<ip>:<port>` for every Service in the namespace, so the chart's
`<fullname>-metrics` Service became `WARMPOOL_METRICS_PORT=tcp://...` in the operator's
environment, which `warmpool operator` reads as its `--metrics-port` and failed to start.
"""

from __future__ import annotations

from chart_support import Manifest, find


def test_operator_and_activator_pods_have_no_service_links(
    all_on_objects: list[Manifest],
) -> None:
    deployments = find(all_on_objects, "Deployment")
    assert {d["metadata"]["name"].rsplit("-", 1)[-1] for d in deployments} >= {"activator"}
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert pod.get("enableServiceLinks") is False, deployment["metadata"]["name"]
