# Two commands on a fresh machine: `make demo` and `make test` (see README).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
ACTIVATE := source $(VENV)/bin/activate
DEMO_DIR := models/demo
DEMO_MODEL := $(DEMO_DIR)/demo.keras
export TF_CPP_MIN_LOG_LEVEL ?= 2
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST

.PHONY: venv build demo test lint clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	touch $@

build: venv
	$(ACTIVATE) && colcon build --paths . --event-handlers console_cohesion-

$(DEMO_MODEL): | venv
	$(ACTIVATE) && python -m grasp_success_ros synth $(DEMO_DIR)/data/train --images 10000 --seed 1
	$(ACTIVATE) && python -m grasp_success_ros synth $(DEMO_DIR)/data/valid --images 200 --seed 2
	$(ACTIVATE) && python -m grasp_success_ros train $(DEMO_DIR)/data/train \
	  $(DEMO_DIR)/data/valid $(DEMO_MODEL) --backbone mobilenet_v3_small --input-size 96 \
	  --weights none --epochs 4 --batch-size 32 --optimizer adam --learning-rate 1e-3 \
	  --lr-schedule cosine --augment none --no-early-stopping

demo: build $(DEMO_MODEL)
	$(ACTIVATE) && source install/setup.bash && \
	  grasp_success_ros_cli=install/grasp_success_ros/lib/grasp_success_ros/grasp-success && \
	  $$grasp_success_ros_cli demo --model $(DEMO_MODEL) --grasps 20

test: venv
	$(ACTIVATE) && python -m pytest -ra

lint: venv
	$(ACTIVATE) && ruff check .

clean:
	rm -rf build install log $(DEMO_DIR)
