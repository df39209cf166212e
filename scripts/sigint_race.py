"""Reproduce rclpy's Ctrl-C race (grasp_success_ros/ros/rclpy_compat.py, settle_interrupt):
a process spinning a MultiThreadedExecutor is sent SIGINT and, on the KeyboardInterrupt,
shuts its executors down at once (``--settle``: only after rclpy's signal thread shut the
context down). Many registered executors lengthen the signal thread's walk, busy processes
beside it make it lose the CPU mid-walk; an exit of -11 is the race.

    python scripts/sigint_race.py --runs 40            # 2026-12-08, Jazzy 7.1.6: 3 and 5 of 40
    python scripts/sigint_race.py --runs 40 --settle   # none of 40, twice (Kilted 9.1.2:
                                                       # 1 of 40 at once)
"""

from __future__ import annotations

import argparse
import collections
import random
import signal
import subprocess
import sys
import time


def child(settle: bool, executors: int) -> None:
    import rclpy
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
    from std_msgs.msg import Empty

    from grasp_success_ros.ros.rclpy_compat import settle_interrupt

    rclpy.init()
    node = rclpy.create_node("sigint_race")
    pub = node.create_publisher(Empty, "sigint_race", 10)
    node.create_timer(0.002, lambda: pub.publish(Empty()))
    others = [SingleThreadedExecutor() for _ in range(executors)]  # each registers a guard
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    try:
        print("spinning", flush=True)
        executor.spin()
    except KeyboardInterrupt:
        if settle:
            print("settled" if settle_interrupt(node.context) else "not settled", flush=True)
    finally:
        for each in [executor, *others]:
            each.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--settle", action="store_true")
    parser.add_argument("--executors", type=int, default=300)
    parser.add_argument("--busy", type=int, default=3, help="busy processes beside it")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.settle, args.executors)
        return 0
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(args.busy)]
    codes: collections.Counter = collections.Counter()
    try:
        for _ in range(args.runs):
            cmd = [sys.executable, __file__, "--child", "--executors", str(args.executors)]
            proc = subprocess.Popen(cmd + (["--settle"] if args.settle else []),
                                    stdout=subprocess.PIPE, text=True)
            proc.stdout.readline()
            time.sleep(random.uniform(0.05, 0.3))
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=60)
            codes[proc.returncode] += 1
    finally:
        for p in busy:
            p.kill()
    print(f"{'settled' if args.settle else 'at once'}: exit codes {dict(codes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
