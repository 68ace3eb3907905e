"""A scripted OpenCompass model for tests: answers each prompt from a table instead of running a network.

`path` names a JSON file holding a list of {"match": text, "response": text}; the first entry whose
`match` occurs in the prompt gives the response, and any other prompt gets `default`. (A file, not an
inline list: OpenCompass pretty-prints each task's config, which is slow for a long inline table.)
OpenCompass imports this class by its dotted path, so the tests put this directory on PYTHONPATH.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from opencompass.models.base import BaseModel
from opencompass.utils.prompt import PromptList


def _text(prompt: object) -> str:
    if isinstance(prompt, PromptList):
        return "\n".join(p["prompt"] if isinstance(p, dict) else str(p) for p in prompt)
    return str(prompt)


class ScriptedModel(BaseModel):
    def __init__(self, path: str, default: str = "", **kwargs):
        super().__init__(path=path, **kwargs)
        self.answers = json.loads(Path(path).read_text(encoding="utf-8"))
        self.default = default

    def _answer(self, prompt: object) -> str:
        text = _text(prompt)
        return next((a["response"] for a in self.answers if a["match"] in text), self.default)

    def generate(self, inputs: list, max_out_len: int) -> list[str]:
        return [self._answer(p) for p in inputs]

    def get_ppl(self, inputs: list, mask_length: list[int] | None = None) -> np.ndarray:
        return np.zeros(len(inputs))

    def get_loglikelihood(self, inputs: list, conts: list[str]) -> np.ndarray:
        return np.zeros(len(inputs))

    def get_token_len(self, prompt: str) -> int:
        return len(_text(prompt).split())
