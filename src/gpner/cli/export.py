"""``gpner export``: a model directory's graph for another runtime (ONNX)."""

from __future__ import annotations

import argparse
import sys

from gpner.errors import ConfigError


def add_parser(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("export", help="export a model for another runtime (ONNX)",
                         description="Write MODEL/onnx/model.onnx (dynamic batch and sequence "
                         "axes, checked against PyTorch) and with --int8 its dynamically "
                         "quantised twin model.int8.onnx.")
    p.add_argument("model", help="model directory (or a run directory)")
    p.add_argument("--onnx", action="store_true", help="ONNX, for ONNX Runtime")
    p.add_argument("--int8", action="store_true", help="also an int8 dynamically quantised graph")
    p.add_argument("--opset", type=int, default=17)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gpner.integrations.onnx_export import export_onnx

    if not args.onnx:
        raise ConfigError("say which format: --onnx (the only one so far)", code="E305")
    spec = export_onnx(args.model, int8=args.int8, opset=args.opset)
    print(f"wrote {spec['directory']}: model.onnx" + (", model.int8.onnx" if spec["int8"] else "")
          + f" (largest difference from PyTorch {spec['max_abs_diff_fp32']:.2g}); predict with "
          f"gpner predict {args.model} INPUT --backend onnx" + ("-int8" if spec["int8"] else ""),
          file=sys.stderr)
    return 0
