"""`warmpool`: one console script for the operator and the programs that run in pods.

    warmpool operator    run the operator (kopf)
    warmpool crd         print the InferencePool CRD
    warmpool prefetch    fill the node-local weight cache (init container)
    warmpool warmup      drive warm-up inference and open the readiness gate (sidecar)
    warmpool activator   hold requests for pools at zero (scale-from-zero proxy)

Each program lives in its own subpackage and is imported only when chosen, so the operator
never loads tritonclient and the init container never loads kopf.
"""

from __future__ import annotations

import importlib
import sys

PROGRAMS: dict[str, tuple[str, str]] = {
    "operator": ("warmpool.controller.cli", "Run the operator."),
    "crd": ("warmpool.api.cli", "Print the InferencePool CustomResourceDefinition."),
    "prefetch": ("warmpool.prefetch.cli", "Fill the node-local weight cache (init container)."),
    "warmup": ("warmpool.warmup.cli", "Warm the server up and open the readiness gate."),
    "activator": ("warmpool.activator.cli", "Hold requests for pools at zero."),
}


def _usage() -> str:
    lines = ["usage: warmpool <program> [options]", "", "programs:"]
    lines += [f"  {name:<10} {summary}" for name, (_, summary) in PROGRAMS.items()]
    lines += ["", "`warmpool <program> --help` describes a program's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch to `<module>.main(argv)` of the chosen program."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0 if args else 2
    if args[0] == "--version":
        from warmpool import __version__

        print(__version__)
        return 0
    entry = PROGRAMS.get(args[0])
    if entry is None:
        print(f"warmpool: unknown program {args[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(entry[0])
    result: int = module.main(args[1:])
    return result


if __name__ == "__main__":
    sys.exit(main())
