"""Runs a module (the node, the command line) as ``python -m`` would, reporting on stderr
every attempt to import a package the robot runtime leaves out: Python's audit hook sees
each import statement, also one whose ImportError a caller catches and hides.

Used by test/test_robot_runtime.py in a venv built from requirements-robot.txt."""

import runpy
import sys

LEFT_OUT = {"tensorflow", "keras", "tf_keras", "h5py", "matplotlib", "tensorboard", "onnx",
            "tf2onnx"}
MARK = "ROBOT-RUNTIME IMPORT ATTEMPT:"


def _report(event: str, args: tuple) -> None:
    if event == "import" and str(args[0]).split(".")[0] in LEFT_OUT:
        print(f"{MARK} {args[0]}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    module, sys.argv = sys.argv[1], [sys.argv[1], *sys.argv[2:]]
    sys.addaudithook(_report)
    runpy.run_module(module, run_name="__main__", alter_sys=True)
