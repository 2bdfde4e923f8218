"""A catalogue of bad inputs, each run through the real command line.

Every case must end with exit status 2 and exactly one line on stderr, ``error: <problem>; <fix>``
(the ``says`` fragments; at most about 2000 characters), with no traceback and no half-written
output: the files it would have written do not exist, the files it found are unchanged (a run
directory's ``.hydra/`` copies of its config included), and no temporary file or staging
directory is left. ``debug=true`` shows the traceback instead.

The README's table of bad inputs is this list: ``python tests/test_bad_inputs.py`` prints it, and
a test checks that the README holds it.

Each command runs in a process of its own, forked from a server that has imported torch and the
package once (:class:`search.testing.ForkServer`): that saves the 4 s of imports a fresh
interpreter spends, over a hundred times. ``VITNAS_TEST_FORK=0`` runs each as a fresh
``python -m`` instead.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from search.testing import COMMAND_IMPORTS, ForkServer

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Case:
    id: str
    what: str  # the bad input, as the README lists it
    module: str  # python -m <module>
    args: tuple[str, ...]  # {name} stands for a file of the `inputs` fixture; {run}: a new dir
    says: tuple[str, ...]  # fragments of the error line: the problem, then the fix
    absent: tuple[str, ...] = ()  # outputs that must not exist afterwards
    unchanged: tuple[str, ...] = ()  # inputs that must keep every byte
    nan_at_epoch: int | None = None  # training: a NaN enters this epoch's first batch
    kept_epoch: int | None = None  # training: {run}/supernet.pt must still hold this epoch


TINY = ("data.train_subset=64", "train.epochs=1")
TRAINED = ("data.train_subset=64", "train.epochs=1", "train.batch_size=32")  # as `inputs` did

CASES = [
    # -- python -m supernet.train -------------------------------------------------------------
    Case(
        "train-space-value",
        "invalid search-space value",
        "supernet.train",
        ("hydra.run.dir={run}", "space.patch_size=3", *TINY),
        ("invalid search space: patch_size 3 does not divide img_size 8", "fix those space.*"),
        absent=("{run}/supernet.pt",),
    ),
    Case(
        "train-option-typo",
        "misspelt option",
        "supernet.train",
        ("hydra.run.dir={run}", "train.lrr=0.1"),
        ("unknown option train.lrr", "check its spelling"),
        absent=("{run}",),
    ),
    Case(
        "train-unparsable-override",
        "override Hydra cannot parse",
        "supernet.train",
        ("hydra.run.dir={run}", "train.lr=[1"),
        ("cannot parse the override 'train.lr=[1'", "quote a value that holds special characters"),
        absent=("{run}",),
    ),
    Case(
        "train-group-given-a-number",
        "a config group given a value (Hydra's bare ValueError was a traceback)",
        "supernet.train",
        ("hydra.run.dir={run}", "train=5"),
        ("train=5: train is a config group", "set one of its options as train.<option>=<value>"),
        absent=("{run}",),
    ),
    Case(
        "train-space-field-not-in-preset",
        "a space field the preset leaves out, set without +",
        "supernet.train",
        ("hydra.run.dir={run}", "space.rel_pos=autoformer", *TINY),
        (
            "unknown option space.rel_pos: the space preset does not list rel_pos",
            "add it with +space.rel_pos=<value>",
        ),
        absent=("{run}/supernet.pt",),
    ),
    Case(
        "train-bad-value",
        "option out of range",
        "supernet.train",
        ("hydra.run.dir={run}", "train.lr=-1", *TINY),
        ("train.lr must be a positive number, got -1.0", "pass values in those ranges"),
        absent=("{run}/supernet.pt",),
    ),
    Case(
        "train-progress-value",
        "progress setting that is not auto, true or false",
        "supernet.train",
        ("hydra.run.dir={run}", "train.progress=sometimes", *TINY),
        (
            "train.progress must be auto, true or false, got 'sometimes'",
            "pass values in those ranges",
        ),
        absent=("{run}/supernet.pt",),
    ),
    Case(
        "train-unknown-preset",
        "unknown space preset",
        "supernet.train",
        ("hydra.run.dir={run}", "space=digitz"),
        ("no config space/digitz", "the choices are autoformer_base"),
        absent=("{run}",),
    ),
    Case(
        "train-resume-other-space",
        "checkpoint from another space (resume)",
        "supernet.train",
        ("hydra.run.dir={train_run}", "resume=true", "space=fashion_mnist", *TRAINED),
        (
            "was trained for another search space (embed_dim: checkpoint (32, 48, 64)",
            "ask for the space it was trained with",
        ),
        unchanged=(
            "{train_run}/supernet.pt",
            "{train_run}/metrics.csv",
            "{train_run}/.hydra/config.yaml",
        ),
    ),
    Case(
        "train-resume-truncated",
        "truncated checkpoint (resume)",
        "supernet.train",
        ("hydra.run.dir={run}", "resume={truncated}", *TRAINED),
        (
            "the file is truncated or corrupt",
            "restore it from a copy, or remove it and train again",
        ),
        absent=("{run}/supernet.pt",),
        unchanged=("{truncated}",),
    ),
    Case(
        "train-resume-crafted-pickle",
        "crafted pickle as checkpoint (never executed)",
        "supernet.train",
        ("hydra.run.dir={run}", "resume={crafted}", *TRAINED),
        (
            "refusing to load",
            "could run code when unpickled",
            "use a checkpoint written by `python -m supernet.train`",
        ),
        absent=("{run}/supernet.pt", "{pwned}"),
    ),
    Case(
        "train-resume-nothing",
        "resume without a checkpoint",
        "supernet.train",
        ("hydra.run.dir={run}", "resume=true", *TINY),
        (
            "nothing to resume: no supernet.pt in",
            "pass hydra.run.dir=<the stopped run's directory>",
        ),
        absent=("{run}/supernet.pt",),
    ),
    Case(
        "train-fresh-over-finished",
        "new run into a run directory that has a checkpoint",
        "supernet.train",
        ("hydra.run.dir={train_run}", *TRAINED),
        ("already exists; pass resume=true", "or choose another hydra.run.dir"),
        unchanged=(
            "{train_run}/supernet.pt",
            "{train_run}/metrics.csv",
            "{train_run}/.hydra/config.yaml",
        ),
    ),
    Case(
        "train-missing-data-root",
        "missing data root",
        "supernet.train",
        ("hydra.run.dir={run}", "data=cifar10", "data.root={missing}", *TINY),
        ("CIFAR-10 not found under", "set data.root to the folder holding cifar-10-batches-py"),
        absent=("{run}/supernet.pt", "{missing}"),
    ),
    Case(
        "train-image-size",
        "images of another size than the space",
        "supernet.train",
        ("hydra.run.dir={run}", "space=fashion_mnist", *TINY),
        (
            "data 'digits' gives 8x8 images with 1 channel(s) and 10 classes, but the search space "
            "fashion_mnist expects 28x28",
            "use data and a search space that match",
        ),
        absent=("{run}/supernet.pt",),
    ),
    Case(
        "train-nan-loss",
        "non-finite loss (keeps the last good checkpoint)",
        "supernet.train",
        ("hydra.run.dir={run}", "data.train_subset=128", "train.epochs=3"),
        (
            "training diverged: the training loss became nan at epoch 2, step 1 (subnets D64-L4",
            "still holds epoch 1, the last good one",
            "a lower train.lr (now 0.003)",
        ),
        nan_at_epoch=2,
        kept_epoch=1,
    ),
    Case(
        "train-run-dir-not-writable",
        "run directory not writable",
        "supernet.train",
        ("hydra.run.dir={a_file}/run", *TINY),
        ("cannot write the run directory", "Not a directory", "pass hydra.run.dir="),
        unchanged=("{a_file}",),
    ),
    Case(
        "finetune-subnet-outside-space",
        "subnet outside the space",
        "supernet.train",
        ("hydra.run.dir={run}", "mode=finetune", "supernet={checkpoint}", "subnet={outside}"),
        (
            "invalid subnet for this space: num_heads[0] = 3 is not a choice",
            "of this space (1, 2, 4)",
        ),
        absent=("{run}/checkpoint.pt", "{run}/subnet"),
    ),
    Case(
        "finetune-foreign-checkpoint",
        "another tool's checkpoint",
        "supernet.train",
        ("hydra.run.dir={run}", "mode=finetune", "supernet={foreign}", "subnet=smallest"),
        ("is not a supernet checkpoint of this tool", "give one written by"),
        absent=("{run}/checkpoint.pt", "{run}/subnet"),
    ),
    # -- python -m supernet.train: bounds, devices, damaged inputs (issue 15) ------------------
    Case(
        "train-threads-beyond-cores",
        "more threads than CPU cores",
        "supernet.train",
        ("hydra.run.dir={run}", "threads=100000", *TINY),
        ("threads=100000 is more than the", "CPU core(s) this process may use", "use threads="),
        absent=("{run}",),
    ),
    Case(
        "train-seed-negative",
        "negative seed",
        "supernet.train",
        ("hydra.run.dir={run}", "seed=-1", *TINY),
        ("seed must be an integer from 0 to 4294967295, got -1", "pass seed=0"),
        absent=("{run}",),
    ),
    Case(
        "train-seed-beyond-64-bits",
        "seed beyond 64 bits",
        "supernet.train",
        ("hydra.run.dir={run}", "seed=18446744073709551616", *TINY),
        ("seed must be an integer from 0 to 4294967295, got 18446744073709551616", "pass seed=0"),
        absent=("{run}",),
    ),
    Case(
        "train-space-too-big-for-memory",
        "a space whose supernet the memory cannot hold",
        "supernet.train",
        ("hydra.run.dir={run}", "space.embed_dim=[300000]", *TINY),
        (
            "training this supernet (",
            "needs about",
            "of memory, but this machine has",
            "choose smaller space.* choices",
        ),
        absent=("{run}",),
    ),
    Case(
        "train-device-absent",
        "a CUDA device this machine does not have",
        "supernet.train",
        ("hydra.run.dir={run}", "device=cuda:7", *TINY),
        ("device=cuda:7: ", "use device=cpu (or auto)"),
        absent=("{run}",),
    ),
    Case(
        "train-device-mps",
        "MPS on a machine without it",
        "supernet.train",
        ("hydra.run.dir={run}", "device=mps", *TINY),
        ("device=mps: MPS (Apple's GPU) is not available on this machine", "use device=cpu"),
        absent=("{run}",),
    ),
    Case(
        "train-resume-version-not-a-number",
        "checkpoint whose version is a string (resume)",
        "supernet.train",
        ("hydra.run.dir={run}", "resume={version_string}", *TRAINED),
        ("its version is '1', not a number", "give one written by `python -m supernet.train`"),
        absent=("{run}/supernet.pt",),
        unchanged=("{version_string}",),
    ),
    Case(
        "train-corrupt-image",
        "a file in an image folder that is not an image",
        "supernet.train",
        (
            "hydra.run.dir={run}",
            "data=imagefolder",
            "data.root={images}",
            "data.img_size=8",
            "space.in_chans=3",
            "space.num_classes=2",
            "train.epochs=1",
            "train.batch_size=4",
            "train.num_workers=1",
        ),
        ("cannot read the image {images}/train/b/3.png", "replace or remove the file"),
        absent=("{run}",),
    ),
    Case(
        "finetune-binary-subnet-yaml",
        "subnet.yaml of binary bytes",
        "supernet.train",
        ("hydra.run.dir={run}", "mode=finetune", "subnet={binary_export}"),
        ("subnet.yaml is not a subnet file: it holds binary data", "export it again"),
        absent=("{run}",),
    ),
    Case(
        "finetune-metadata-not-mapping",
        "subnet.yaml whose metadata: is not a mapping",
        "supernet.train",
        ("hydra.run.dir={run}", "mode=finetune", "subnet={list_metadata_export}"),
        ("metadata: must be a mapping, got list", "export it again"),
        absent=("{run}",),
    ),
    Case(
        "finetune-alias-bomb",
        "subnet file that is a YAML alias bomb",
        "supernet.train",
        ("hydra.run.dir={run}", "mode=finetune", "supernet={checkpoint}", "subnet={bomb}"),
        ("expands to more than 1,000,000 YAML nodes through its aliases", "give a plain file"),
        absent=("{run}",),
    ),
    Case(
        "finetune-nan-export",
        "export with NaN weights",
        "supernet.train",
        ("hydra.run.dir={run}", "mode=finetune", "subnet={nan_export}"),
        ("model.safetensors holds NaN or infinite weights", "export the subnet again"),
        absent=("{run}",),
    ),
    Case(
        "finetune-nan-supernet",
        "supernet checkpoint with NaN weights",
        "supernet.train",
        ("hydra.run.dir={run}", "mode=finetune", "supernet={nan_checkpoint}", "subnet=smallest"),
        ("holds NaN or infinite weights (in head.weight)", "use an earlier checkpoint"),
        absent=("{run}",),
    ),
    Case(
        "finetune-model-a-list",
        "checkpoint whose model is a list",
        "supernet.train",
        ("hydra.run.dir={run}", "mode=finetune", "supernet={model_list}", "subnet=smallest"),
        ("its model entry is a list, not the weights", "give one written by"),
        absent=("{run}",),
    ),
    Case(
        "finetune-in-a-supernet-run",
        "a fine-tune pointed at the supernet's training run directory",
        "supernet.train",
        ("hydra.run.dir={train_run}", "mode=finetune", "supernet={checkpoint}", "subnet=middle"),
        (
            "{train_run} holds a supernet training run (supernet.pt)",
            "give it a directory of its own, e.g. hydra.run.dir={train_run}/finetune",
        ),
        absent=("{train_run}/checkpoint.pt", "{train_run}/result.json"),
        # its per-epoch curve (a fine-tune writes a metrics.csv too) and Hydra's record of it
        unchanged=("{train_run}/metrics.csv", "{train_run}/.hydra/config.yaml"),
    ),
    # -- python -m search ---------------------------------------------------------------------
    Case(
        "search-in-a-training-run",
        "a search pointed at the supernet's training run directory",
        "search",
        ("hydra.run.dir={train_run}", "supernet={checkpoint}"),
        (
            "{train_run} holds a supernet training run (supernet.pt)",
            "e.g. hydra.run.dir={train_run}/search",
        ),
        absent=("{train_run}/study.db", "{train_run}/search.log"),
        unchanged=("{train_run}/metrics.csv", "{train_run}/.hydra/config.yaml"),
    ),
    Case(
        "search-budget-given-a-list",
        "a config group given a list",
        "search",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "budget=[1M,2M]"),
        ("budget= chooses one of autoformer_base", "set one of its options as budget.<option>"),
        absent=("{run}",),
    ),
    Case(
        "search-sweep-over-runs",
        "a sweep (-m) into a directory holding other runs",
        "search",
        ("-m", "supernet={checkpoint}", "hydra.sweep.dir={root}"),
        (
            "whose files a job of this sweep of search runs would mix with or replace",
            # {root}/search exists (the search run): the suggestion is a free directory
            "give the sweep a directory of its own, e.g. hydra.sweep.dir={root}/search-2",
        ),
        absent=("{root}/multirun.yaml", "{root}/0"),
        unchanged=("{train_run}/.hydra/config.yaml", "{search_run}/.hydra/config.yaml"),
    ),
    Case(
        "search-no-checkpoint",
        "no checkpoint given",
        "search",
        ("hydra.run.dir={run}",),
        ("no supernet checkpoint given", "pass supernet=<path to supernet.pt>"),
        absent=("{run}/study.db", "{run}/trials.csv"),
    ),
    Case(
        "search-multirun-with-cfg",
        "a sweep (-m) asked to print its config (--cfg)",
        "search",
        ("-m", "supernet={checkpoint}", "search.n_trials=1,2", "--cfg", "hydra"),
        ("Only one of --run, --multirun, --cfg", "--cfg job prints the composed config"),
        absent=("{run}",),
    ),
    Case(
        "search-truncated-checkpoint",
        "truncated checkpoint",
        "search",
        ("hydra.run.dir={run}", "supernet={truncated}"),
        ("cannot read checkpoint", "truncated or corrupt", "restore it from a copy"),
        absent=("{run}/study.db", "{run}/trials.csv"),
    ),
    Case(
        "search-crafted-pickle",
        "crafted pickle as checkpoint (never executed)",
        "search",
        ("hydra.run.dir={run}", "supernet={crafted}"),
        ("refusing to load", "use a checkpoint written by"),
        absent=("{run}/study.db", "{pwned}"),
    ),
    Case(
        "search-space-override",
        "space= given to a search (the space is the checkpoint's)",
        "search",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "space=digits"),
        ("unknown option space", "comes from its supernet checkpoint", "drop space="),
        absent=("{run}",),
    ),
    Case(
        "search-text-checkpoint",
        "a text file given as checkpoint (a log, a CSV)",
        "search",
        ("hydra.run.dir={run}", "supernet={text_file}"),
        ("is a text file (it starts", "use a checkpoint written by"),
        absent=("{run}/study.db", "{run}/trials.csv"),
    ),
    Case(
        "search-sampler-option-out-of-range",
        "sampler option out of range",
        "search",
        (
            "hydra.run.dir={run}",
            "supernet={checkpoint}",
            "search.sampler=nsga2",
            "search.nsga2.population_size=1",
        ),
        ("search.nsga2: `population_size` must be greater than or equal to 2", "pass a value"),
        absent=("{run}/study.db", "{run}/study.yaml"),
    ),
    Case(
        "search-startup-trials-negative",
        "negative TPE start-up trials",
        "search",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "search.tpe.n_startup_trials=-1"),
        ("`n_startup_trials` must be an integer >= 0, got -1", "pass a value in range"),
        absent=("{run}/study.db", "{run}/study.yaml"),
    ),
    Case(
        "search-budget-below-smallest",
        "budget below the smallest subnet",
        "search",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "budget.flops=1k"),
        (
            "budget.flops = 1k FLOPs is below the smallest subnet",
            "this space spans",
            "raise budget.flops to at least",
        ),
        absent=("{run}/study.db", "{run}/trials.csv"),
    ),
    Case(
        "search-budget-malformed",
        "malformed budget",
        "search",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "budget.flops=2X"),
        ("budget.flops must be a number like 2e6 or 2M, got '2X'",),
        absent=("{run}/study.db",),
    ),
    Case(
        "search-unknown-sampler",
        "unknown sampler",
        "search",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "search.sampler=cma"),
        ("unknown sampler 'cma'", "choose one of auto, nsga2, tpe, random, gp"),
        absent=("{run}/study.db",),
    ),
    Case(
        "search-latency-device-form",
        "a latency target that is not a device",
        "search",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "search.latency_device=gpu"),
        (
            "search.latency_device must be the device a latency profile was calibrated on",
            "pass search.latency_device=cpu",
        ),
        absent=("{run}/study.db",),
    ),
    Case(
        "search-option-typo",
        "misspelt option",
        "search",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "search.n_trails=5"),
        ("unknown option search.n_trails", "check its spelling"),
        absent=("{run}",),
    ),
    Case(
        "search-storage-unreachable",
        "storage URL unreachable",
        "search",
        (
            "hydra.run.dir={run}",
            "supernet={checkpoint}",
            "search.storage=postgresql://nobody@127.0.0.1:1/db",
        ),
        (
            "cannot open the Optuna storage 'postgresql://nobody@127.0.0.1:1/db'",
            "Connection refused",
            "check that the database server is running",
        ),
        absent=("{run}/study.db", "{run}/trials.csv"),
    ),
    Case(
        "search-storage-malformed",
        "malformed storage URL",
        "search",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "search.storage=nosuchdb://x"),
        ("cannot open the Optuna storage 'nosuchdb://x'", "give an RDB URL such as"),
        absent=("{run}/trials.csv",),
    ),
    Case(
        "search-run-dir-not-writable",
        "run directory not writable",
        "search",
        ("hydra.run.dir={a_file}/run", "supernet={checkpoint}"),
        ("cannot write the run directory", "pass hydra.run.dir="),
        unchanged=("{a_file}",),
    ),
    Case(
        "search-checkpoint-data-mismatch",
        "checkpoint whose images do not fit its data (wrong image size / channels)",
        "search",
        ("hydra.run.dir={run}", "supernet={mismatched}"),
        (
            "gives 8x8 images with 1 channel(s)",
            "expects 28x28",
            "use data and a search space that match",
        ),
        absent=("{run}/study.db",),
    ),
    Case(
        "search-study-of-another-search",
        "study name of another search",
        "search",
        (
            "hydra.run.dir={search_run}",
            "supernet={checkpoint}",
            "budget.flops=5M",
            "search.study_name='{study}'",
        ),
        (
            "was made for another search (budget:",
            "search.study_name=<new name> in a new hydra.run.dir",
        ),
        unchanged=(
            "{search_run}/trials.csv",
            "{search_run}/study.yaml",
            "{search_run}/.hydra/config.yaml",
        ),
    ),
    Case(
        "search-latency-without-profile",
        "latency budget without a latency profile",
        "search",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "budget.latency_ms=5"),
        (
            "budget.latency_ms needs predicted latency",
            "calibrate one with",
            "python -m search.latency calibrate",
        ),
        absent=("{run}/study.db",),
    ),
    # -- python -m search: the rest of issue 15 ------------------------------------------------
    Case(
        "search-unparsable-override",
        "override Hydra cannot parse",
        "search",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "search.n_trials=[1"),
        ("cannot parse the override 'search.n_trials=[1'", "quote a value"),
        absent=("{run}",),
    ),
    Case(
        "search-bad-value",
        "option out of range",
        "search",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "search.n_trials=-1"),
        ("search.n_trials must be a non-negative integer, got -1", "pass search.n_trials="),
        absent=("{run}",),
    ),
    Case(
        "search-device-absent",
        "a CUDA device this machine does not have",
        "search",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "search.device=cuda:7"),
        ("search.device=cuda:7: ", "use search.device=cpu (or auto)"),
        absent=("{run}",),
        unchanged=("{checkpoint}",),
    ),
    Case(
        "search-device-mps",
        "MPS on a machine without it",
        "search",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "search.device=mps"),
        ("search.device=mps: MPS (Apple's GPU) is not available", "use search.device=cpu"),
        absent=("{run}",),
    ),
    Case(
        "search-seed-negative",
        "negative seed",
        "search",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "seed=-1"),
        ("seed must be an integer from 0 to 4294967295 or null, got -1", "pass seed=0"),
        absent=("{run}",),
    ),
    Case(
        "search-seed-beyond-64-bits",
        "seed beyond 64 bits",
        "search",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "seed=18446744073709551616"),
        ("seed must be an integer from 0 to 4294967295 or null", "pass seed=0"),
        absent=("{run}",),
    ),
    Case(
        "search-threads-beyond-cores",
        "more threads than CPU cores",
        "search",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "search.threads=100000"),
        ("search.threads=100000 is more than the", "use search.threads="),
        absent=("{run}",),
    ),
    Case(
        "search-too-many-workers",
        "more workers than the machine can run",
        "search",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "search.n_workers=100000"),
        ("search.n_workers=100000 is more than this machine can run", "use search.n_workers="),
        absent=("{run}",),
    ),
    Case(
        "search-nan-checkpoint",
        "supernet checkpoint with NaN weights",
        "search",
        ("hydra.run.dir={run}", "supernet={nan_checkpoint}"),
        ("holds NaN or infinite weights (in head.weight)", "use an earlier checkpoint"),
        absent=("{run}",),
    ),
    Case(
        "search-version-not-a-number",
        "checkpoint whose version is a string",
        "search",
        ("hydra.run.dir={run}", "supernet={version_string}"),
        ("its version is '1', not a number", "give one written by"),
        absent=("{run}",),
    ),
    Case(
        "search-model-a-list",
        "checkpoint whose model is a list",
        "search",
        ("hydra.run.dir={run}", "supernet={model_list}"),
        ("its model entry is a list, not the weights", "give one written by"),
        absent=("{run}",),
    ),
    Case(
        "search-checkpoint-too-big-for-memory",
        "checkpoint whose space the memory cannot hold",
        "search",
        ("hydra.run.dir={run}", "supernet={huge_space}"),
        ("holds a supernet of", "needs about", "load it on a machine with more free memory"),
        absent=("{run}",),
    ),
    Case(
        "search-damaged-study-db",
        "truncated study.db, rerun in place",
        "search",
        ("hydra.run.dir={damaged_db}", "supernet={checkpoint}", "search.n_trials=4"),
        ("the study database {damaged_db}/study.db is damaged", "restore it from a copy"),
        unchanged=(
            "{damaged_db}/study.db",
            "{damaged_db}/trials.csv",
            "{damaged_db}/study.yaml",
            "{damaged_db}/.hydra/config.yaml",
        ),
    ),
    # -- python -m search.export --------------------------------------------------------------
    Case(
        "export-no-such-trial",
        "export of a trial that does not exist",
        "search.export",
        ("{search_run}", "trial=99", "out={run}/best"),
        ("no trial 99 in this run (trials 0 to", "pass one of those, or trial=best"),
        absent=("{run}/best",),
    ),
    Case(
        "export-of-a-checkpoint",
        "a supernet checkpoint given as the search run",
        "search.export",
        ("{checkpoint}", "out={run}/best"),
        (
            "supernet.pt is a supernet checkpoint, not a search run dir",
            "after searching it: python -m search supernet=",
        ),
        absent=("{run}/best",),
    ),
    Case(
        "export-unknown-flag",
        "a flag where key=value options go",
        "search.export",
        ("{search_run}", "--out", "{run}/best"),
        ("unknown flag '--out': this command takes key=value options, not flags",),
        absent=("{run}/best",),
    ),
    Case(
        "export-infeasible-trial",
        "export of an infeasible trial",
        "search.export",
        ("{search_run}", "trial={infeasible}", "out={run}/t"),
        (
            "broke the search's budget",
            "and was never evaluated",
            "export a feasible trial (trial=best), or pass allow_infeasible=true",
        ),
        absent=("{run}/t",),
    ),
    Case(
        "export-out-not-writable",
        "output directory not writable",
        "search.export",
        ("{search_run}", "out={a_file}/best", "onnx=false"),
        (
            "cannot write {a_file}/best",
            "is a file, not a directory",
            "choose a location you may write to",
        ),
        unchanged=("{a_file}",),
    ),
    Case(
        "export-out-not-empty",
        "output directory holding an earlier export",
        "search.export",
        ("{search_run}", "out={earlier_export}", "onnx=false"),
        ("exists and is not empty", "pass overwrite=true"),
        unchanged=("{earlier_export}/subnet.yaml", "{earlier_export}/model.safetensors"),
    ),
    Case(
        "export-out-not-an-export",
        "output directory holding other files (with overwrite=true)",
        "search.export",
        ("{search_run}", "out={taken}", "overwrite=true", "onnx=false"),
        ("out={taken} holds keep.txt, not an export's files", "choose a new or empty directory"),
        unchanged=("{taken}/keep.txt",),
    ),
    Case(
        "export-checkpoint-changed",
        "another checkpoint than the one searched",
        "search.export",
        ("{search_run}", "supernet={mismatched}", "out={run}/best"),
        ("is not the checkpoint this run searched", "pass supernet=<the searched one>"),
        absent=("{run}/best",),
    ),
    Case(
        "export-checkpoint-damaged",
        "the searched checkpoint damaged since the search",
        "search.export",
        ("{search_run}", "supernet={truncated}", "out={run}/best"),
        (
            "is damaged, truncated or corrupt",
            "restore the searched checkpoint from a copy, or pass supernet=<an undamaged copy>",
        ),
        absent=("{run}/best",),
    ),
    Case(
        "export-option-typo",
        "misspelt option",
        "search.export",
        ("{search_run}", "trail=3", "out={run}/best"),
        ("unknown option 'trail'", "the options are trial, out"),
        absent=("{run}/best",),
    ),
    # -- python -m supernet.convert ------------------------------------------------------------
    Case(
        "convert-option-typo",
        "misspelt option",
        "supernet.convert",
        ("autoformer", "{af_supernet}", "outt={run}"),
        ("unknown option 'outt'", "the options are out, space, subnet"),
        absent=("{run}",),
    ),
    Case(
        "convert-unparsable-override",
        "option value that does not parse",
        "supernet.convert",
        ("autoformer", "{af_supernet}", "out={run}", "val_size=many"),
        ("val_size: Value 'many' of type 'str' could not be converted to Integer",),
        absent=("{run}",),
    ),
    Case(
        "convert-bad-value",
        "option out of range",
        "supernet.convert",
        ("autoformer", "{af_supernet}", "out={run}", "val_size=0"),
        ("val_size must be a positive number of images, got 0", "pass val_size=10000"),
        absent=("{run}",),
    ),
    Case(
        "convert-unknown-keys",
        "not an AutoFormer checkpoint (unknown keys)",
        "supernet.convert",
        ("autoformer", "{foreign}", "out={run}"),
        (
            "is not an AutoFormer ViT checkpoint: unknown key(s) weights",
            "expected AutoFormer's names (patch_embed_super.proj.weight",
        ),
        absent=("{run}",),
    ),
    Case(
        "convert-shapes-outside-space",
        "AutoFormer checkpoint with shapes outside the space",
        "supernet.convert",
        ("autoformer", "{af_outside}", "out={run}", "space=digits"),
        (
            "does not fit space digits: its 3 blocks of width 40",
            "neither hold the space's largest subnet (depth 4, width 64, 4 heads, MLP 256) nor are "
            "one of its subnets",
            "pass space=<a preset or YAML> that holds it",
        ),
        absent=("{run}",),
    ),
    Case(
        "convert-not-tensors",
        "AutoFormer checkpoint holding other values than tensors",
        "supernet.convert",
        ("autoformer", "{af_not_tensors}", "out={run}"),
        (
            "is not a state dict: cls_token hold(s) str, not tensors",
            "give an AutoFormer checkpoint",
        ),
        absent=("{run}",),
    ),
    Case(
        "convert-crafted-pickle",
        "crafted pickle as AutoFormer checkpoint (never executed)",
        "supernet.convert",
        ("autoformer", "{crafted}", "out={run}"),
        ("refusing to load", "could run code when unpickled", "give a checkpoint saved by"),
        absent=("{run}", "{pwned}"),
    ),
    Case(
        "convert-supernet-without-data",
        "AutoFormer supernet without the images to search it on",
        "supernet.convert",
        ("autoformer", "{af_supernet}", "out={run}", "space={af_space}"),
        ("is a supernet checkpoint", "pass data=<ImageFolder root with train/ and val/>"),
        absent=("{run}",),
    ),
    Case(
        "export-out-is-the-run",
        "out= the searched run itself (with overwrite=true)",
        "search.export",
        ("{search_run}", "out={search_run}", "overwrite=true", "onnx=false"),
        ("out={search_run} is the searched run", "choose a new directory for the export"),
        unchanged=("{search_run}/study.db", "{search_run}/trials.csv", "{search_run}/study.yaml"),
    ),
    Case(
        "export-out-is-the-checkpoint-dir",
        "out= the training run holding the checkpoint (with overwrite=true)",
        "search.export",
        ("{search_run}", "out={train_run}", "overwrite=true", "onnx=false"),
        ("out={train_run} is the checkpoint's directory", "choose a new directory"),
        unchanged=("{checkpoint}", "{train_run}/metrics.csv"),
    ),
    Case(
        "export-out-holds-the-run",
        "out= a directory holding the searched run (with overwrite=true)",
        "search.export",
        ("{search_run}", "out={root}", "overwrite=true", "onnx=false"),
        ("out={root} holds the searched run", "choose a new directory"),
        unchanged=("{checkpoint}", "{search_run}/study.db"),
    ),
    Case(
        "export-trial-not-whole",
        "option out of range: a trial number that is not whole",
        "search.export",
        ("{search_run}", "trial=5.9", "out={run}/best"),
        ("trial must be best or a trial number, got 5.9", "pass trial=best or a whole number"),
        absent=("{run}",),
    ),
    Case(
        "export-unparsable-override",
        "override that cannot be parsed",
        "search.export",
        ("{search_run}", "trial=[1", "out={run}/best"),
        ("cannot parse the override 'trial=[1'", "quote a value"),
        absent=("{run}",),
    ),
    Case(
        "export-manifest-not-a-mapping",
        "study.yaml that is not a mapping",
        "search.export",
        ("{list_manifest}", "out={run}/best"),
        ("study.yaml is not a search manifest (a list, not a mapping)", "restore it from a copy"),
        absent=("{run}",),
    ),
    Case(
        "export-manifest-without-hash",
        "study.yaml without the checkpoint's hash",
        "search.export",
        ("{no_hash}", "out={run}/best"),
        ("study.yaml lacks checkpoint_sha256", "restore it from a copy"),
        absent=("{run}",),
    ),
    Case(
        "export-trials-missing-column",
        "trials.csv with a missing column",
        "search.export",
        ("{missing_column}", "out={run}/best"),
        ("trials.csv is not a trials table this tool can read", "lacks the column(s) flops"),
        absent=("{run}",),
    ),
    Case(
        "export-trials-garbage-row",
        "trials.csv with a garbage row",
        "search.export",
        ("{garbage_row}", "out={run}/best"),
        ("column 'number' holds 'garbage' in row", "write it again from the study"),
        absent=("{run}",),
    ),
    Case(
        "export-trials-broken-json",
        "trials.csv with a broken JSON list",
        "search.export",
        ("{broken_json}", "out={run}/best"),
        ("column 'num_heads' holds '[1, 2' in row 1", "not a JSON list", "restore it"),
        absent=("{run}",),
    ),
    Case(
        "export-trials-nan-costs",
        "trials.csv with NaN costs",
        "search.export",
        ("{nan_costs}", "out={run}/best"),
        ("trial 0 is COMPLETE but has no params", "write it again from the study"),
        absent=("{run}",),
    ),
    Case(
        "export-nan-checkpoint",
        "searched checkpoint with NaN weights",
        "search.export",
        ("{nan_run}", "out={run}/best", "onnx=false"),
        ("holds NaN or infinite weights (in head.weight)", "use an earlier checkpoint"),
        absent=("{run}",),
    ),
    # -- python -m search.report / search.latency ---------------------------------------------
    Case(
        "report-no-runs",
        "report of a directory without search runs",
        "search.report",
        ("{taken}",),
        ("no search runs (dirs with trials.csv) under", "give the run dir of a `python -m search`"),
        absent=("{taken}/report.csv",),
    ),
    Case(
        "report-cost-without-values",
        "a cost axis the runs have no values of",
        "search.report",
        ("{search_run}", "out={run}", "cost=latency_ms", "png=false"),
        ("cost=latency_ms: none of these runs' trials has a latency_ms value", "pass cost=flops"),
        absent=("{run}/report.csv", "{run}/report_pareto.html"),
    ),
    Case(
        "report-out-not-writable",
        "report output not writable",
        "search.report",
        ("{search_run}", "out={a_file}/report", "png=false"),
        ("cannot write {a_file}/report", "is a file, not a directory"),
        unchanged=("{a_file}",),
    ),
    Case(
        "report-option-typo",
        "misspelt option",
        "search.report",
        ("{search_run}", "kost=3"),
        ("unknown option 'kost'", "check its spelling"),
        absent=("{search_run}/report.csv",),
    ),
    Case(
        "report-unparsable-override",
        "override that cannot be parsed",
        "search.report",
        ("{search_run}", "cost=[1"),
        ("cannot parse the override 'cost=[1'", "quote a value"),
        absent=("{search_run}/report.csv",),
    ),
    Case(
        "report-bad-value",
        "option out of range",
        "search.report",
        ("{search_run}", "cost=furlongs", "png=false"),
        ("cost must be one of params, macs, flops, latency_ms, got 'furlongs'", "pass cost=flops"),
        absent=("{search_run}/report.csv",),
    ),
    Case(
        "report-trials-missing-column",
        "trials.csv with a missing column",
        "search.report",
        ("{missing_column}", "png=false"),
        ("lacks the column(s) flops", "write it again from the study"),
        absent=("{missing_column}/report.csv",),
    ),
    Case(
        "report-trials-garbage-row",
        "trials.csv with a garbage row",
        "search.report",
        ("{garbage_row}", "png=false"),
        ("column 'number' holds 'garbage' in row", "write it again from the study"),
        absent=("{garbage_row}/report.csv",),
    ),
    Case(
        "report-trials-broken-json",
        "trials.csv with a broken JSON list",
        "search.report",
        ("{broken_json}", "png=false"),
        ("column 'num_heads' holds '[1, 2' in row 1", "not a JSON list"),
        absent=("{broken_json}/report.csv",),
    ),
    Case(
        "report-trials-nan-costs",
        "trials.csv with NaN costs",
        "search.report",
        ("{nan_costs}", "png=false"),
        ("trial 0 is COMPLETE but has no params", "write it again from the study"),
        absent=("{nan_costs}/report.csv",),
    ),
    Case(
        "report-manifest-not-a-mapping",
        "study.yaml that is not a mapping",
        "search.report",
        ("{list_manifest}", "png=false"),
        ("study.yaml is not a search manifest (a list, not a mapping)", "restore it from a copy"),
        absent=("{list_manifest}/report.csv",),
    ),
    Case(
        "latency-unknown-command",
        "unknown latency command",
        "search.latency",
        ("calibrat", "space=digits"),
        ("unknown or missing command 'calibrat'", "use python -m search.latency calibrate|measure"),
    ),
    Case(
        "latency-subnet-outside-space",
        "subnet outside the space (latency)",
        "search.latency",
        ("measure", "hydra.run.dir={run}", "space=digits", "subnet={outside}"),
        (
            "invalid subnet for this space: num_heads[0] = 3 is not a choice",
            "give a subnet made of this space's choices",
        ),
        absent=("{run}/latency_measurement.yaml",),
    ),
    Case(
        "latency-space-and-supernet",
        "space= and supernet= both given (latency)",
        "search.latency",
        ("measure", "hydra.run.dir={run}", "space=swin_digits", "supernet={checkpoint}"),
        ("both name the space to measure", "pass only one of them"),
        absent=("{run}",),
    ),
    Case(
        "latency-option-typo",
        "misspelt option",
        "search.latency",
        ("measure", "hydra.run.dir={run}", "space=digits", "repeatz=3"),
        ("unknown option repeatz", "check its spelling"),
        absent=("{run}",),
    ),
    Case(
        "latency-unparsable-override",
        "override Hydra cannot parse",
        "search.latency",
        ("measure", "hydra.run.dir={run}", "space=digits", "repeats=[1"),
        ("cannot parse the override 'repeats=[1'", "quote a value"),
        absent=("{run}",),
    ),
    Case(
        "latency-bad-value",
        "option out of range",
        "search.latency",
        ("measure", "hydra.run.dir={run}", "space=digits", "repeats=0"),
        ("repeats must be an integer >= 1, got 0", "pass repeats=5"),
        absent=("{run}",),
    ),
    Case(
        "latency-calibrate-one-sample",
        "option out of range: one subnet to fit on (latency)",
        "search.latency",
        ("calibrate", "hydra.run.dir={run}", "space=digits", "n_samples=1"),
        ("n_samples must be an integer >= 2, got 1", "pass n_samples=32"),
        absent=("{run}",),
    ),
    Case(
        "latency-negative-seed",
        "option out of range: negative seed (latency)",
        "search.latency",
        ("calibrate", "hydra.run.dir={run}", "space=digits", "seed=-1"),
        ("seed must be an integer from 0 to 4294967295, got -1", "pass seed=0"),
        absent=("{run}",),
    ),
    Case(
        "latency-subnet-not-a-file",
        "subnet= a device, not a file (latency)",
        "search.latency",
        ("measure", "hydra.run.dir={run}", "space=digits", "subnet=/dev/null"),
        ("subnet=/dev/null: /dev/null is not a regular file", "give an export directory"),
        absent=("{run}/latency_measurement.yaml",),
    ),
    Case(
        "latency-binary-subnet",
        "subnet file of binary bytes (latency)",
        "search.latency",
        ("measure", "hydra.run.dir={run}", "space=digits", "subnet={binary_yaml}"),
        ("is not a subnet file: it holds binary data", "give the right file"),
        absent=("{run}",),
    ),
    # -- python -m search.rank ----------------------------------------------------------------
    Case(
        "rank-option-typo",
        "misspelt option",
        "search.rank",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "kk=3"),
        ("unknown option kk", "check its spelling"),
        absent=("{run}",),
    ),
    Case(
        "rank-band-given-a-list",
        "a group of options given a value",
        "search.rank",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "band=[1M,2M]"),
        ("band is a group of options, not a value", "set one of them as band.<option>=<value>"),
        absent=("{run}",),
    ),
    Case(
        "rank-unparsable-override",
        "override Hydra cannot parse",
        "search.rank",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "k=[1"),
        ("cannot parse the override 'k=[1'", "quote a value"),
        absent=("{run}",),
    ),
    Case(
        "rank-bad-value",
        "option out of range",
        "search.rank",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "k=2"),
        ("k must be an integer ≥ 3, got 2", "pass k=3 or more"),
        absent=("{run}",),
    ),
    Case(
        "rank-band-malformed",
        "malformed cost band (ranking)",
        "search.rank",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "band.flops=10M"),
        (
            "band.flops must be [low, high] (like [8M,10M]) or centre+-percent (like 8.9M+-10%)",
            "pass band.flops=[8M,10M]",
        ),
        absent=("{run}/rank.csv", "{run}/rank.yaml", "{run}/scratch"),
    ),
    Case(
        "rank-band-empty",
        "cost band holding fewer than k subnets",
        "search.rank",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "band.flops=[1k,2k]", "k=5"),
        ("holds 0 distinct subnet(s)", "fewer than k=5", "widen the band, lower k"),
        absent=("{run}/rank.csv", "{run}/rank.yaml", "{run}/scratch"),
    ),
    Case(
        "rank-seeds-repeated",
        "repeated stand-alone seeds",
        "search.rank",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "seeds=[0,0]"),
        (
            "seeds must be a list of distinct non-negative integers, got [0, 0]",
            "pass seeds=[0,1,2]",
        ),
        absent=("{run}/rank.csv", "{run}/rank.yaml", "{run}/scratch"),
    ),
    Case(
        "rank-unknown-proxy",
        "unknown proxy",
        "search.rank",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "proxies=[flops,grasp]"),
        (
            "proxies must name each of params, flops, depth, naswot, synflow, dss at most once",
            "pass a list of them",
        ),
        absent=("{run}/rank.csv", "{run}/rank.yaml", "{run}/scratch"),
    ),
]

#: How the README shows the placeholders.
SHOWN = {
    "run": "<new dir>",
    "train_run": "<finished run>",
    "checkpoint": "<supernet.pt>",
    "truncated": "<truncated.pt>",
    "crafted": "<crafted.pt>",
    "text_file": "<metrics.csv>",
    "foreign": "<other tool's .pt>",
    "mismatched": "<.pt: 28x28 space, digits data>",
    "search_run": "<search run>",
    "study": "<its study>",
    "infeasible": "<over-budget trial>",
    "a_file": "<a file>",
    "outside": "<subnet.yaml outside the space>",
    "taken": "<non-empty dir>",
    "earlier_export": "<earlier export>",
    "missing": "<missing path>",
    "pwned": "<marker>",
    "af_supernet": "<AutoFormer .pth>",
    "af_space": "<its space.yaml>",
    "af_outside": "<AutoFormer .pth, 40 wide>",
    "af_not_tensors": "<.pth of strings>",
    "root": "<dir holding both runs>",
    "version_string": "<.pt: version '1'>",
    "model_list": "<.pt: model a list>",
    "nan_checkpoint": "<.pt with NaN weights>",
    "huge_space": "<.pt: space embed_dim 300000>",
    "binary_export": "<export: binary subnet.yaml>",
    "list_metadata_export": "<export: metadata a list>",
    "nan_export": "<export with NaN weights>",
    "bomb": "<alias-bomb.yaml>",
    "binary_yaml": "<binary.yaml>",
    "images": "<image folder with a corrupt PNG>",
    "list_manifest": "<run: study.yaml a list>",
    "no_hash": "<run: study.yaml without checkpoint_sha256>",
    "missing_column": "<run: trials.csv without flops>",
    "garbage_row": "<run: trials.csv + a garbage row>",
    "broken_json": "<run: trials.csv num_heads '[1, 2'>",
    "nan_costs": "<run: trials.csv, trial 0 without params>",
    "nan_run": "<run of a NaN checkpoint>",
    "damaged_db": "<run: study.db truncated>",
}

#: A 356-byte YAML document whose aliases expand to 9**9 (387 million) strings.
ALIAS_BOMB = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"{x}: &{x} [{','.join([f'*{p}'] * 9)}]"
            for p, x in zip("abcdefgh", "bcdefghi", strict=True)
        ),
        "embed_dim: *i",
    ]
)


# -- inputs ---------------------------------------------------------------------------------------
class _Crafted:
    """Unpickling it would create the marker file: the test proves it never happens."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('x')",))


def _autoformer_state(
    width: int,
    depth: int,
    heads: int,
    head_dim: int,
    img: int,
    patch: int,
    chans: int,
    classes: int,
) -> dict[str, torch.Tensor]:
    """Random tensors with AutoFormer's ViT names and shapes (relative positions, max distance 1
    when the heads are 8 wide; none otherwise)."""
    q, m = heads * head_dim, 2 * width
    state = {
        "patch_embed_super.proj.weight": torch.randn(width, chans, patch, patch),
        "patch_embed_super.proj.bias": torch.randn(width),
        "cls_token": torch.randn(1, 1, width),
        "pos_embed": torch.randn(1, (img // patch) ** 2 + 1, width),
        "norm.weight": torch.ones(width),
        "norm.bias": torch.zeros(width),
        "head.weight": torch.randn(classes, width),
        "head.bias": torch.zeros(classes),
    }
    for i in range(depth):
        shapes = {
            "attn_layer_norm.weight": (width,),
            "attn_layer_norm.bias": (width,),
            "attn.qkv.weight": (3 * q, width),
            "attn.qkv.bias": (3 * q,),
            "attn.proj.weight": (width, q),
            "attn.proj.bias": (width,),
            "ffn_layer_norm.weight": (width,),
            "ffn_layer_norm.bias": (width,),
            "fc1.weight": (m, width),
            "fc1.bias": (m,),
            "fc2.weight": (width, m),
            "fc2.bias": (width,),
        }
        if head_dim == 8:
            shapes |= {
                f"attn.rel_pos_embed_{p}.embeddings_table_{a}": (4, 8) for p in "kv" for a in "vh"
            }
        state |= {f"blocks.{i}.{name}": torch.randn(*shape) for name, shape in shapes.items()}
    return state


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from search import run_search
    from supernet import SearchSpace, Supernet, complexity, save_checkpoint
    from supernet.train import train_supernet

    root = tmp_path_factory.mktemp("inputs")
    run = train_supernet(
        {
            "run_dir": str(root / "train"),
            "space": "digits",
            "threads": 1,
            "data": {"name": "digits", "train_subset": 64},
            "train": {"epochs": 1, "batch_size": 32},
        }
    )
    checkpoint = run.checkpoint
    truncated = root / "truncated.pt"
    truncated.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 3])
    torch.save(
        {"format": "vitnas-supernet", "model": _Crafted(root / "pwned")}, root / "crafted.pt"
    )
    torch.save({"weights": torch.zeros(3)}, root / "foreign.pt")
    torch.manual_seed(0)
    save_checkpoint(
        root / "mismatched.pt",
        Supernet(SearchSpace.preset("fashion_mnist")),
        data={"name": "digits"},
        train={},
    )
    space = SearchSpace.preset("digits")
    half = complexity.flops(space, space.smallest()) + complexity.flops(space, space.largest())
    searched = run_search(
        {
            "supernet": str(checkpoint),
            "budget": {"flops": half // 2},
            "search": {"n_trials": 4, "sampler": "random", "progress": False, "plots_png": False},
        },
        root / "search",
    )
    over = searched.trials.loc[searched.trials["feasible"] == False, "number"]  # noqa: E712
    (root / "a_file").write_text("not a directory\n")
    outside = {"embed_dim": 32, "depth": 2, "num_heads": [3, 1], "mlp_ratio": [2.0, 2.0]}
    (root / "outside.yaml").write_text(yaml.safe_dump(outside))
    (root / "taken").mkdir()
    (root / "taken" / "keep.txt").write_text("mine\n")
    af_space = SearchSpace(
        embed_dim=(16,),
        depth=(2,),
        num_heads=(1, 2),
        mlp_ratio=(2.0,),
        img_size=12,
        patch_size=4,
        num_classes=5,
        head_dim=8,
        pool="cls_mean",
        rel_pos="autoformer",
        rel_pos_max_distance=1,
        norm_eps=1e-5,
    )
    af_space.to_yaml(root / "af_space.yaml")
    torch.save({"model": _autoformer_state(16, 2, 2, 8, 12, 4, 3, 5)}, root / "af_supernet.pth")
    torch.save({"model": _autoformer_state(40, 3, 1, 16, 8, 2, 1, 10)}, root / "af_outside.pth")
    torch.save({"model": {"cls_token": "zeros"}}, root / "af_not_tensors.pth")
    (root / "metrics.csv").write_text("epoch,train_loss\n1,0.5\n")  # tab-completed by mistake
    # A refused command must leave the run directories' Hydra config copies as they were.
    for run_dir in (run.run_dir, searched.run_dir):
        (run_dir / ".hydra").mkdir(exist_ok=True)
        (run_dir / ".hydra" / "config.yaml").write_text("# the run's own config\n")
    damaged = _damaged_inputs(root, checkpoint, searched.run_dir)
    return {
        **damaged,
        "root": str(root),
        "train_run": str(run.run_dir),
        "checkpoint": str(checkpoint),
        "truncated": str(truncated),
        "crafted": str(root / "crafted.pt"),
        "text_file": str(root / "metrics.csv"),
        "foreign": str(root / "foreign.pt"),
        "mismatched": str(root / "mismatched.pt"),
        "search_run": str(searched.run_dir),
        "study": searched.study_name,
        "infeasible": str(int(over.iloc[0])),
        "a_file": str(root / "a_file"),
        "outside": str(root / "outside.yaml"),
        "taken": str(root / "taken"),
        "pwned": str(root / "pwned"),
        "af_supernet": str(root / "af_supernet.pth"),
        "af_space": str(root / "af_space.yaml"),
        "af_outside": str(root / "af_outside.pth"),
        "af_not_tensors": str(root / "af_not_tensors.pth"),
    }


def _damaged_inputs(root: Path, checkpoint: Path, search_run: Path) -> dict[str, str]:
    """Checkpoints, exports, run directories and files damaged in the ways issue 15 lists."""
    import shutil

    import pandas as pd
    from PIL import Image

    from supernet import SearchSpace, Supernet, save_subnet
    from supernet.checkpoint import file_sha256

    paths: dict[str, Path] = {}
    payload = torch.load(checkpoint, weights_only=True)

    def variant(name: str, **changes: object) -> None:
        paths[name] = root / f"{name}.pt"
        torch.save({**payload, **changes}, paths[name])

    nan_model = {k: v.clone() for k, v in payload["model"].items()}
    nan_model["head.weight"][0, 0] = float("nan")
    variant("nan_checkpoint", model=nan_model)
    variant("version_string", version="1")
    variant("model_list", model=list(payload["model"].values()))
    variant("huge_space", space={**payload["space"], "embed_dim": [300000]})

    space = SearchSpace.preset("digits")
    model = Supernet(space).extract(space.smallest())
    export = save_subnet(model, space, root / "export")
    paths["earlier_export"] = export
    paths["binary_export"] = root / "binary_export"
    shutil.copytree(export, paths["binary_export"])
    (paths["binary_export"] / "subnet.yaml").write_bytes(bytes(range(256)) * 8)
    paths["list_metadata_export"] = root / "list_metadata_export"
    shutil.copytree(export, paths["list_metadata_export"])
    config = yaml.safe_load((export / "subnet.yaml").read_text())
    config["metadata"] = [1, 2]
    (paths["list_metadata_export"] / "subnet.yaml").write_text(yaml.safe_dump(config))
    with torch.no_grad():
        next(iter(model.parameters())).fill_(float("inf"))
    paths["nan_export"] = save_subnet(model, space, root / "nan_export")
    paths["bomb"] = root / "alias-bomb.yaml"
    paths["bomb"].write_text(ALIAS_BOMB)
    paths["binary_yaml"] = root / "binary.yaml"
    paths["binary_yaml"].write_bytes(bytes(range(256)) * 8)

    paths["images"] = root / "images"
    generator = torch.Generator().manual_seed(0)
    for split in ("train", "val"):
        for label in ("a", "b"):
            folder = paths["images"] / split / label
            folder.mkdir(parents=True)
            for i in range(8):
                pixels = torch.randint(0, 256, (8, 8, 3), generator=generator, dtype=torch.uint8)
                Image.fromarray(pixels.numpy()).save(folder / f"{i}.png")
    (paths["images"] / "train" / "b" / "3.png").write_bytes(b"not an image at all")

    def run_copy(name: str) -> Path:
        paths[name] = root / name
        shutil.copytree(search_run, paths[name])
        (paths[name] / "trials.parquet").unlink()  # export reads the (damaged) CSV then
        return paths[name]

    (run_copy("list_manifest") / "study.yaml").write_text("- a list, not a manifest\n")
    manifest = yaml.safe_load((search_run / "study.yaml").read_text())
    del manifest["checkpoint_sha256"]
    (run_copy("no_hash") / "study.yaml").write_text(yaml.safe_dump(manifest))
    table = pd.read_csv(search_run / "trials.csv")
    table.drop(columns=["flops"]).to_csv(run_copy("missing_column") / "trials.csv", index=False)
    text = (search_run / "trials.csv").read_text() + "garbage,oops\n"
    (run_copy("garbage_row") / "trials.csv").write_text(text)
    broken = table.copy()
    broken.loc[0, "num_heads"] = "[1, 2"
    broken.to_csv(run_copy("broken_json") / "trials.csv", index=False)
    no_costs = table.copy()
    no_costs.loc[0, "params"] = None
    no_costs.to_csv(run_copy("nan_costs") / "trials.csv", index=False)
    manifest = yaml.safe_load((search_run / "study.yaml").read_text())
    manifest["checkpoint"] = str(paths["nan_checkpoint"])
    manifest["checkpoint_sha256"] = file_sha256(paths["nan_checkpoint"])
    (run_copy("nan_run") / "study.yaml").write_text(yaml.safe_dump(manifest))
    damaged = run_copy("damaged_db")
    for log in ("study.db-wal", "study.db-shm"):  # (the search's connection may still be open)
        (damaged / log).unlink(missing_ok=True)
    database = (damaged / "study.db").read_bytes()
    (damaged / "study.db").write_bytes(database[: len(database) // 3])
    return {name: str(path) for name, path in paths.items()}


# -- running a case -------------------------------------------------------------------------------
#: Run a module as `python -m` does, after making one training batch NaN (a fault no command
#: line can type). argv: epoch to poison, module, arguments.
_WITH_NAN = textwrap.dedent(
    """
    import runpy, sys
    from supernet.train.supernet_training import SupernetTask

    epoch, module = int(sys.argv.pop(1)), sys.argv.pop(1)
    original, calls = SupernetTask.train_step, [0]

    def train_step(self, x, y, amp):
        if calls[0] == (epoch - 1) * 4:  # data.train_subset=128, batch 32: 4 steps per epoch
            x = x.clone()
            x[0] = float("nan")
        calls[0] += 1
        return original(self, x, y, amp)

    SupernetTask.train_step = train_step
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    """
)


def _command(case: Case, values: dict[str, str], debug: bool = False) -> list[str]:
    args = [a.format(**values) for a in case.args] + (["debug=true"] if debug else [])
    if case.nan_at_epoch is not None:
        return [sys.executable, "-c", _WITH_NAN, str(case.nan_at_epoch), case.module, *args]
    return [sys.executable, "-m", case.module, *args]


@pytest.fixture(scope="module")
def server() -> Iterator[ForkServer | None]:
    if os.environ.get("VITNAS_TEST_FORK", "1") == "0":
        yield None
        return
    with ForkServer(COMMAND_IMPORTS, env=_env()) as forks:
        yield forks


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _run(
    command: list[str], cwd: Path, server: ForkServer | None
) -> subprocess.CompletedProcess[str]:
    if server is not None:
        return server.run(command, cwd=cwd, timeout=300)
    return subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(*roots: Path) -> list[Path]:
    """Temporary files and staging directories that an interrupted write would leave."""
    found = []
    for root in roots:
        for path in root.rglob(".*"):
            if path.name != ".hydra" and ".hydra" not in path.parts[:-1]:
                found.append(path)
    return found


@pytest.fixture
def values(inputs: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    run = tmp_path / "new" / "run"  # its parent is new too: a refused command removes both
    yield {**inputs, "run": str(run), "missing": str(tmp_path / "missing")}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(
    case: Case, values: dict[str, str], tmp_path: Path, server: ForkServer | None
) -> None:
    unchanged = {p.format(**values): _digest(Path(p.format(**values))) for p in case.unchanged}
    result = _run(_command(case, values), cwd=tmp_path, server=server)
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    assert "; " in lines[0], lines[0]  # the problem; the fix
    assert len(lines[0]) <= 2100, lines[0][:300]  # a user's value is quoted cut short
    assert "Traceback" not in result.stderr
    for fragment in case.says:
        assert fragment.format(**values) in lines[0], (fragment, lines[0])
    for path in case.absent:
        assert not Path(path.format(**values)).exists(), path
    for path, digest in unchanged.items():
        assert _digest(Path(path)) == digest, path
    run = Path(values["run"])
    assert run.exists() or not run.parent.exists(), "an empty parent of the run dir was left"
    assert not Path(values["pwned"]).exists()  # the crafted pickle never ran
    assert not _leftovers(tmp_path, Path(values["root"]))
    if case.kept_epoch is not None:
        from supernet.checkpoint import load_checkpoint

        payload = load_checkpoint(Path(values["run"]) / "supernet.pt")
        assert payload["epoch"] == case.kept_epoch
        assert all(torch.isfinite(t).all() for t in payload["model"].values())


@pytest.mark.slow
@pytest.mark.parametrize("case_id", ["search-budget-below-smallest", "export-no-such-trial"])
def test_debug_shows_the_traceback(
    case_id: str, values: dict[str, str], tmp_path: Path, server: ForkServer | None
) -> None:
    case = next(c for c in CASES if c.id == case_id)
    result = _run(_command(case, values, debug=True), cwd=tmp_path, server=server)
    assert result.returncode != 0
    assert "Traceback (most recent call last)" in result.stderr
    assert "Error: " in result.stderr  # the exception, e.g. BudgetError: budget.flops = 1k ...
    assert case.says[0].format(**values) in result.stderr


def test_at_least_twenty_distinct_cases() -> None:
    assert len(CASES) >= 20 and len({c.id for c in CASES}) == len(CASES)
    modules = {
        "supernet.train",
        "supernet.convert",
        "search",
        "search.export",
        "search.report",
        "search.latency",
        "search.rank",
    }
    assert {c.module for c in CASES} == modules
    for module in modules:  # every entry point: a typo, a parse error, a range
        kinds = {c.what for c in CASES if c.module == module}
        assert "misspelt option" in kinds, module
        assert any(k.startswith("option out of range") for k in kinds), module
        assert any(
            "cannot be parsed" in k or "cannot parse" in k or "does not parse" in k for k in kinds
        ), module


# -- the README table -----------------------------------------------------------------------------
def _shown(text: str) -> str:
    return text.format(**SHOWN).replace("|", "\\|")


def readme_table() -> str:
    """The README's table of bad inputs, from :data:`CASES`."""
    rows = [
        "| bad input | command | the `error:` line says |",
        "|---|---|---|",
    ]
    for case in CASES:
        command = f"python -m {case.module} {' '.join(case.args)}"
        if case.nan_at_epoch is not None:
            command += f" (a NaN fed into epoch {case.nan_at_epoch})"
        says = " … ".join(case.says)
        rows.append(f"| {case.what} | `{_shown(command)}` | {_shown(says)} |")
    return "\n".join(rows) + "\n"


def test_readme_lists_every_case() -> None:
    readme = (ROOT / "README.md").read_text()
    if "| bad input | command |" not in readme:
        pytest.skip("the README has no table of bad inputs yet (python tests/test_bad_inputs.py)")
    assert readme_table() in readme, "regenerate it: python tests/test_bad_inputs.py"


if __name__ == "__main__":
    print(readme_table(), end="")
