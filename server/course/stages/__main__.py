"""`python -m server.course.stages N [--project DIR]`: a stage check from a terminal."""

import argparse
import sys
from pathlib import Path

from server.course.launcher import stop_all
from server.course.project import LEARNER
from server.course.stages import STAGES, check_stage


def main() -> int:
    parser = argparse.ArgumentParser(description="Check one stage of your chat project.")
    parser.add_argument("stage", type=int, choices=STAGES)
    parser.add_argument("--project", type=Path, default=LEARNER, help="default: notebooks/mychat")
    args = parser.parse_args()
    try:
        return 0 if check_stage(args.stage, args.project) else 1
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main())
