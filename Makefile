# Two commands on a fresh machine: `make demo` and `make test` (see README).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
ACTIVATE := source $(VENV)/bin/activate
DEMO_DIR := models/demo
DEMO_MODEL := $(DEMO_DIR)/demo.keras
PACKAGES := grasp_success_msgs grasp_success_ros
export TF_CPP_MIN_LOG_LEVEL ?= 2
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST

.PHONY: venv browser build demo test lint clean build-kilted test-kilted

venv: $(VENV)/.installed

# ROS 2 as wheels (requirements-ros.txt) plus the other dependencies; then the package itself,
# editable, so `grasp-success` and `grasp_success_node` are commands in the venv that follow
# the sources (colcon's install/ keeps lib/grasp_success_ros/ for `ros2 run`).
$(VENV)/.installed: requirements-ros.txt requirements.txt requirements-robot.txt \
		requirements-dev.txt \
		grasp_success_ros/setup.py grasp_success_ros/setup.cfg
	$(PYTHON) -m venv $(VENV)
	touch $(VENV)/COLCON_IGNORE  # a venv inside the clone holds no package of ours
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements-ros.txt -r requirements-dev.txt
	$(VENV)/bin/pip install -q --no-deps -e grasp_success_ros
	$(MAKE) --no-print-directory browser
	touch $@

# report.html is tested as people read it, in a browser: Debian's chromium (apt needs root;
# elsewhere install it yourself; CI fails the report tests without it, others skip them).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium \
	       || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	            --no-install-recommends chromium; }; } \
	  || echo "note: chromium not installed (apt install chromium): report tests will skip"; }

# Both packages, interfaces first (colcon orders them). The ROS 2 wheels' rosidl CMake exports
# name the wheel builder's Python include directories; scripts/point_rosidl_at_venv.py points
# them at the venv's (idempotent), and AMENT_PREFIX_PATH lets CMake find the wheels' packages.
build: venv
	$(ACTIVATE) && python scripts/point_rosidl_at_venv.py && \
	  AMENT_PREFIX_PATH="$(abspath $(VENV))$${AMENT_PREFIX_PATH:+:$$AMENT_PREFIX_PATH}" \
	  colcon build --paths $(PACKAGES) --event-handlers console_cohesion-

$(DEMO_MODEL): | venv
	$(ACTIVATE) && grasp-success synth $(DEMO_DIR)/data/train --images 10000 --seed 1
	$(ACTIVATE) && grasp-success synth $(DEMO_DIR)/data/valid --images 200 --seed 2
	$(ACTIVATE) && grasp-success train $(DEMO_DIR)/data/train \
	  $(DEMO_DIR)/data/valid $(DEMO_MODEL) --backbone mobilenet_v3_small --input-size 96 \
	  --weights none --epochs 4 --batch-size 32 --optimizer adam --learning-rate 1e-3 \
	  --lr-schedule cosine --augment none --no-early-stopping

demo: build $(DEMO_MODEL)
	$(ACTIVATE) && source install/setup.bash && \
	  grasp-success demo --model $(DEMO_MODEL) --grasps 20

# The tests talk to the node with its own interfaces: build, source, then test (ROS's order).
# Their model is the demo's, whose recipe test/conftest.py's trained_model fixture follows when
# pytest runs without it: trained once, for this suite and (exported to ONNX) for Kilted's.
# TEST_WORKERS pytest-xdist workers share the files (each its own DDS domain, conftest.py);
# a file's tests stay on one worker, so a module's node is started once.
TEST_WORKERS ?= 2
PARALLEL := -n $(TEST_WORKERS) --dist loadfile
test: build $(DEMO_MODEL)
	$(ACTIVATE) && source install/setup.bash && \
	  GRASP_SUCCESS_TEST_MODEL="$(abspath $(DEMO_MODEL))" python -m pytest $(PARALLEL) -ra \
	  --durations=20

lint: venv
	$(ACTIVATE) && ruff check .

# --- ROS 2 Kilted, the second distribution (README, "ROS 2 distributions") ----------------
# Its wheels in their own venv beside the robot runtime (no TensorFlow), both packages built
# into build-kilted/ install-kilted/, a test model exported to ONNX, then the ROS-facing tests
# on Kilted's rclpy. Nothing of the Jazzy set-up is sourced: the recipes below drop the ROS
# paths a sourced workspace or a Jazzy process leaves in the environment (the wheels' start-up
# puts their libraries on LD_LIBRARY_PATH once per process tree).
KILTED_VENV := .venv-kilted
KILTED := unset _ROS_WHEELS_BOOTSTRAP_COMPLETE LD_LIBRARY_PATH PYTHONPATH AMENT_PREFIX_PATH \
	  CMAKE_PREFIX_PATH COLCON_PREFIX_PATH && source $(KILTED_VENV)/bin/activate
KILTED_MODEL_DIR := build-kilted/test-model
KILTED_MODEL := $(KILTED_MODEL_DIR)/tiny.onnx
# The ROS-facing test files, whole (README, "ROS 2 distributions", says why the others are not).
KILTED_TESTS := $(addprefix grasp_success_ros/test/,test_rclpy_compat.py test_dds_profile.py \
	test_lifecycle.py test_node.py test_hostile.py test_bag_replay.py test_node_hand.py)

$(KILTED_VENV)/.installed: requirements-ros-kilted.txt requirements-robot.txt \
		grasp_success_ros/setup.py grasp_success_ros/setup.cfg
	$(PYTHON) -m venv $(KILTED_VENV)
	touch $(KILTED_VENV)/COLCON_IGNORE
	$(KILTED_VENV)/bin/pip install -q --upgrade pip
	$(KILTED_VENV)/bin/pip install -q -r requirements-ros-kilted.txt -r requirements-robot.txt \
	  colcon-common-extensions "pytest>=8" pytest-timeout "pytest-xdist>=3.5"
	$(KILTED_VENV)/bin/pip install -q --no-deps -e grasp_success_ros
	touch $@

build-kilted: $(KILTED_VENV)/.installed
	$(KILTED) && python scripts/point_rosidl_at_venv.py && \
	  AMENT_PREFIX_PATH="$(abspath $(KILTED_VENV))" colcon --log-base log-kilted build \
	  --build-base build-kilted --install-base install-kilted --paths $(PACKAGES) \
	  --event-handlers console_cohesion-

# The Kilted tests' model: the Jazzy suite's (the demo model), exported to ONNX by the Jazzy
# venv's TensorFlow, which the Kilted venv serves with ONNX Runtime alone.
$(KILTED_MODEL): $(DEMO_MODEL) | venv
	mkdir -p $(KILTED_MODEL_DIR)
	$(ACTIVATE) && grasp-success export $(DEMO_MODEL) --format onnx --out $@

test-kilted: build-kilted $(KILTED_MODEL)
	$(KILTED) && source install-kilted/setup.bash && \
	  GRASP_SUCCESS_TEST_MODEL="$(abspath $(KILTED_MODEL))" \
	  GRASP_SUCCESS_TEST_INSTALL="$(abspath install-kilted)" \
	  python -m pytest $(PARALLEL) -ra --durations=10 $(KILTED_TESTS)

clean:
	rm -rf build install log $(DEMO_DIR) build-kilted install-kilted log-kilted
