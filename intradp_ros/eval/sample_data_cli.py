"""Command line of scripts/make_sample_bags: argument parsing and one call into `sample_data.ensure_sample_bags`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace

from intradp_ros.eval.sample_data import SampleDataError, SceneConfig, SceneError, default_cache_dir, ensure_sample_bags


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="make_sample_bags",
        description="Write the sample camera and point-cloud bags (deterministic; reused when already there).",
    )
    p.add_argument("--out", default=None, help=f"cache folder (default {default_cache_dir()})")
    p.add_argument("--picture", default="astronaut", help="astronaut or camera (scikit-image) or an image file")
    p.add_argument("--frames", type=int, default=30, help="camera frames (default 30)")
    p.add_argument("--cloud-frames", type=int, default=SceneConfig.frames, help="point-cloud frames (default 20)")
    p.add_argument("--seed", type=int, default=SceneConfig.seed, help="scene seed (default 0)")
    p.add_argument("--force", action="store_true", help="rewrite the bags even if they exist")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.frames < 1 or args.cloud_frames < 1:
        print("make_sample_bags: --frames and --cloud-frames must be >= 1", file=sys.stderr)
        return 2
    cloud = replace(SceneConfig(), seed=args.seed, frames=args.cloud_frames)
    try:
        paths = ensure_sample_bags(args.out, args.picture, args.frames, cloud, force=args.force)
    except (SampleDataError, SceneError) as err:
        print(f"make_sample_bags: {err}", file=sys.stderr)
        return 1
    print(json.dumps({k: str(v) for k, v in paths.items()}))
    return 0
