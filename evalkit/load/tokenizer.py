"""A small byte-level BPE tokenizer, trained locally and deterministically, with a ChatML template.

Byte-level BPE encodes any text (English, code, Chinese) without unknown tokens, so the tiny
family can run every suite; the merges only make common code and English cheaper. Its normalizer and
pre-tokenizer are exactly Qwen2's, and it is saved as a `Qwen2Tokenizer`, so an exported branch (whose
config says `qwen2` or `qwen3`, which makes transformers rebuild the tokenizer as Qwen2's) tokenizes
every text exactly as the family does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from evalkit.records.io import write_text_atomic

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# The Qwen2.5 ChatML template, trimmed of tool calling.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if loop.first and message['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

_CORPUS = (
    """
def add(a, b):
    return a + b

def is_prime(n: int) -> bool:
    if n < 2:
        return False
    for i in range(2, int(n ** 0.5) + 1):
        if n % i == 0:
            return False
    return True

class Stack:
    def __init__(self):
        self.items = []

    def push(self, item):
        self.items.append(item)

    def pop(self):
        return self.items.pop()

from typing import List, Dict, Optional, Tuple
import math
import re

def parse(text: str) -> List[str]:
    \"\"\" Split the text into words and return them in order.
    >>> parse('a b c')
    ['a', 'b', 'c']
    \"\"\"
    result = []
    for word in text.split():
        if word not in result:
            result.append(word)
    return sorted(result, key=lambda x: len(x))

assert add(1, 2) == 3
print(is_prime(7), is_prime(10))

Question: Which of the following is the best answer? Answer with the letter of the correct option.
A. the first option  B. the second option  C. the third option  D. the fourth option
Answer: The answer is B. Let's think step by step. First, we compute the total. Therefore the answer is 42.
The quick brown fox jumps over the lazy dog. A student has 12 apples and gives away 5 of them.
How many apples are left? There are 7 apples left. The sum of the angles of a triangle is 180 degrees.
Water boils at 100 degrees Celsius at sea level. The capital of France is Paris.
Solve for x: 2x + 3 = 11, so x = 4. The derivative of x^2 is 2x. \\frac{1}{2} + \\frac{1}{3} = \\frac{5}{6}
True or False: not ( True ) and False is False. Sentence: The trophy does not fit in the suitcase.
问题：以下哪一项是正确的？答案：选项 A 是正确的。中国的首都是北京。水在一百摄氏度沸腾。
请一步一步地思考，然后给出答案。这个问题的答案是三。学生们在教室里学习数学和语文。
"""
    * 3
)


def build_tokenizer(out_dir: str | Path, vocab_size: int = 768, extra_corpus: Sequence[str] = ()) -> Path:
    """Train the tokenizer and save it in transformers' format (tokenizer.json + tokenizer_config.json).

    `extra_corpus` adds lines to the built-in corpus (the trained tiny family adds its prompts, so that
    their boilerplate costs fewer tokens).

    transformers writes the files in place: `out_dir` is the temporary directory of a checkpoint that
    `build_checkpoint` publishes as a whole.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([*_CORPUS.splitlines(keepends=True), *extra_corpus], trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    out = Path(out_dir)
    fast.save_pretrained(out)
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "Qwen2Tokenizer"
    write_text_atomic(config_path, json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    return out
