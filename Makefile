# The README's two commands: `make demo` and `make test`. Both set up .venv first (idempotent).
PY := .venv/bin/python
PIP := .venv/bin/pip
STAMP := .venv/.rlgen-installed
export MUJOCO_GL ?= egl
# Small torch networks: one thread is as fast as two here and makes seeded runs repeat exactly.
export OMP_NUM_THREADS ?= 1

.PHONY: setup demo test test-slow lint bench-throughput clips clean

setup: $(STAMP)

# torch==2.13.0 goes in first: it is the CPU build on these machines, and once it is installed every
# later requirement (torch>=2.2) is already met, so a CUDA build is never pulled in.
# constraints.txt pins the simulator stack the committed results were made with; the suites extra brings the
# third-party sparse tasks (DeepMind Control Suite, Gymnasium-Robotics) that the tests exercise.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --disable-pip-version-check torch==2.13.0
	$(PIP) install -q --disable-pip-version-check -c constraints.txt -e ".[dev,suites,video]"
	touch $(STAMP)

demo: setup
	$(PY) -m rlgen.demo

test: setup
	$(PY) -m pytest -q -n 2 --dist loadfile

test-slow: setup
	$(PY) -m pytest -q -m slow

lint: setup
	.venv/bin/ruff check rlgen tests benchmarks

bench-throughput: setup
	$(PY) benchmarks/throughput.py

# The README's clips: one evaluation episode (its first 120 steps) of each committed expert of the imitation
# benchmark, rendered offscreen (EGL here; OSMesa works too) at 200x150.
CLIP_RUNS := benchmarks/results/runs/imitation/experts
clips: setup
	for task in Ant Humanoid; do \
	  lower=$$(echo $$task | tr A-Z a-z); \
	  $(PY) -m rlgen.cli eval $(CLIP_RUNS)/trpo_$$task-v5_s0 --episodes 1 --video docs/$$lower.gif \
	    --video-steps 120 --video-size 200x150 || exit 1; \
	done

clean:
	rm -rf .venv runs .pytest_cache
