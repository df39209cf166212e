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

.PHONY: venv browser build demo test lint clean

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
test: build
	$(ACTIVATE) && source install/setup.bash && python -m pytest -ra --durations=20

lint: venv
	$(ACTIVATE) && ruff check .

clean:
	rm -rf build install log $(DEMO_DIR)
