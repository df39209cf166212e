"""``python -m grasp_success_ros``: the ``grasp-success`` command line."""

import sys

from grasp_success_ros.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
