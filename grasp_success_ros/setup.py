"""ament_python package: executables go to lib/grasp_success_ros for ``ros2 run``."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "grasp_success_ros"
VERSION = "0.1.0"  # keep equal to package.xml (a test checks)

setup(
    name=PACKAGE,
    version=VERSION,
    packages=find_packages(exclude=["test"]),
    package_dir={"": "."},
    # hand profiles by name (data/hand_profiles.py) and the Fast DDS profile
    package_data={f"{PACKAGE}.ros": ["resources/*.xml"], f"{PACKAGE}.data": ["hands/*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config",
         glob("config/*.yaml") + glob(f"{PACKAGE}/ros/resources/*.xml")),
        (f"share/{PACKAGE}/config/hands", glob(f"{PACKAGE}/data/hands/*.yaml")),
        # behaviour-tree leaves for VerifyGrasp (README, "Behaviour-tree leaves")
        (f"share/{PACKAGE}/examples", glob("examples/*.py") + glob("examples/*.xml")),
    ],
    install_requires=["setuptools"],
    # bag-eval / extract --engine ray (bags/engines.py); imported only with that option.
    # openvino: the onnx_runtime openvino runtime (model/runtimes.py), imported only then:
    # bf16 on CPUs with AVX-512 BF16 / AMX, Intel GPUs and NPUs (README, "Runtimes").
    extras_require={"ray": ["ray>=2.9"], "openvino": ["openvino>=2025.0"]},
    zip_safe=False,
    maintainer="grasp_success_ros maintainers",
    maintainer_email="grasp-success@example.org",
    description="Grasp success verification from the hand camera for ROS 2",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            f"grasp_success_node = {PACKAGE}.ros.node:main",
            f"grasp-success = {PACKAGE}.cli.main:main",
        ],
    },
)
