"""The ``grasp-success`` command line (and the drivers that start processes)."""
