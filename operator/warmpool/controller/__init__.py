"""The operator: kopf wiring around two reconcilers that share one runtime.

    cli.py         `warmpool operator`: settings, logging, kopf embedded (or elected first)
    settings.py    flags and their WARMPOOL_* environment fallbacks (pure)
    handlers.py    the flat table of kopf handlers: thin, each hands its event to the runtime
    runtime.py     one client, one watch cache, one refresh loop, both reconcilers; kopf's settings
    loop.py        the refresh loop: marked pools at once, every pool once per scaling interval
    metrics.py     the operator's Prometheus metrics;  health.py: liveness;  logs.py: log lines
    kube/          Kubernetes plumbing: the client, the watch cache, server-side apply, Events
    ha/            leader election on a Lease, the standby's health, `--leader-elect`
    pool/          the pool reconciler: validate, decide (scaling/), render (render/), apply,
                   status, cold-start accounting, Events
    prepull/       the pre-pull reconciler: node labels of verified weight copies

Dependencies run one way: handlers -> runtime -> pool/prepull -> kube, and pool -> scaling,
render, api, contract; nothing here is imported by the agents (prefetch, warm-up, activator),
which share only `warmpool.contract` with the operator.
"""
