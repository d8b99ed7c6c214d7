"""`warmpool crd`: print the generated CRD (what crds/ and the chart carry)."""

from __future__ import annotations

import argparse
import sys

from warmpool.api.crd import render_crd_yaml


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="warmpool crd", description=__doc__)
    parser.add_argument("-o", "--output", help="write to this file instead of stdout")
    args = parser.parse_args(argv)
    text = render_crd_yaml()
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0
