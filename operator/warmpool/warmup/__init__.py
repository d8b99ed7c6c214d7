"""The warm-up readiness-gate sidecar (``warmpool warmup``).

Modules: :mod:`.steady` (the pure steady-state rule), :mod:`.inputs` (warm-up request data),
:mod:`.triton` (async HTTP/gRPC driver), :mod:`.report` (the condition message format the
operator parses), :mod:`.condition` (the ``pods/status`` writer), :mod:`.runner` (the cycle),
:mod:`.health` (probe endpoints), :mod:`.cli` (flags and environment).
"""
