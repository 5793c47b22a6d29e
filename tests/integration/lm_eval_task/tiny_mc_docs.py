"""The documents of the `tenon_tiny_mc` lm-eval task, read from tiny_mc.jsonl beside this file.

lm-eval calls `load_docs` through the task YAML's `custom_dataset`, so the data file is found
relative to this module, whatever the working directory, and `datasets` never looks online.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets

DOCS_PATH = Path(__file__).with_name("tiny_mc.jsonl")


def load_docs(**_task_metadata: Any) -> datasets.DatasetDict:
    """The task's one split, `test`: rows of question, choices (4 strings) and answer (index)."""
    with DOCS_PATH.open(encoding="utf-8") as docs_file:
        rows = [json.loads(line) for line in docs_file if line.strip()]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
