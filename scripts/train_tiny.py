"""Train the embedded tiny family, jointly at every exit, on templated items; write it into the package.

    python scripts/train_tiny.py                 # rewrites evalkit/fixtures/tiny-ruyi/ (about 35 CPU minutes)
    python scripts/train_tiny.py --steps 3 --out /tmp/t   # a quick check that the script works

What it does, deterministically from --seed on a CPU with --threads threads:
1. draws training items from the templates in `_templated_items.py` (a seed of its own, not the
   fixtures'), and drops every item equal to a fixture item (same question, options and answer);
2. writes them in OpenCompass's on-disk layout with `make_fixtures.py`'s writers, loads them with
   OpenCompass's own loaders and renders each prompt with the dataset's own 0-shot prompt template and
   the tokenizer's chat template, exactly as `evalkit run` renders the fixtures;
3. builds the tiny Ruyi-format checkpoint from a seed (a tokenizer trained with those prompts added to
   its corpus), then trains every exit at once: the loss is the mean over exits of the cross-entropy
   of the answer (in the format the dataset's evaluator parses, e.g. `ANSWER: B`, `\\boxed{7}`) and
   the end-of-turn token, plus the same on short practice texts of the skills (every token scored);
4. writes config, weights, tokenizer and `training.json` (what it was trained on) atomically.

The code datasets (HumanEval, MBPP, LiveCodeBench) are not trained on.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
import _templated_items  # noqa: E402
import make_fixtures  # noqa: E402

from evalkit.load.tiny import TRAINED_DIR, TinySpec, build_checkpoint  # noqa: E402
from evalkit.records.io import atomic_directory, write_bytes_atomic, write_text_atomic  # noqa: E402

CODE = ("humaneval", "mbpp", "livecodebench")
# What each dataset's evaluator parses, given the gold answer as the dataset's loader gives it.
RESPONSES = {
    "mmlu": "ANSWER: {}",
    "mmlu_pro": "ANSWER: {}",
    "gpqa": "ANSWER: {}",
    "cmmlu": "答案: {}",
    "bbh": "So the answer is {}.",
    "arc_c": "{}",
    "hellaswag": "{}",
    "winogrande": "{}",
    "math": "\\boxed{{{}}}",
    "gsm8k": "\\boxed{{{}}}",
}


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 1
    steps: int = 7000
    batch_size: int = 16
    lr: float = 2e-3
    warmup: int = 50
    weight_decay: float = 0.01
    scale: int = 80  # training items per template slot (the fixtures have scale 5)
    drills: int = 4000  # practice texts (see _templated_items.drills)
    drills_per_step: int = 8
    vocab_size: int = 1024  # room for every template word as one token
    init_std: float = 0.02  # the usual initialisation; the random family's 0.1 saturates attention early
    threads: int = 1  # one thread: the same numbers run after run, and no spinning on a shared machine


def render(items: dict) -> tuple[list[dict], dict[str, int]]:
    """Prompts and responses for every item, rendered through OpenCompass as a run renders them."""
    import datasets
    from opencompass.models.base_api import APITemplateParser
    from opencompass.openicl.icl_prompt_template import PromptTemplate
    from opencompass.utils.build import build_dataset_from_cfg

    from evalkit.catalog.datasets import dataset_of
    from evalkit.oc import suites
    from evalkit.oc.fixtures import FIXTURE_GROUPS
    from evalkit.oc.model import _CHAT_META, chat_messages

    examples: list[dict] = []
    counts: dict[str, int] = {}
    parser = APITemplateParser(_CHAT_META)
    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as tmp:
        make_fixtures.write_data(Path(tmp) / "data", items)
        old = os.environ.get("COMPASS_DATA_CACHE")
        os.environ["COMPASS_DATA_CACHE"] = tmp
        try:
            for cfg in suites.dataset_configs(["general", "stem"], groups=FIXTURE_GROUPS):
                key, _ = dataset_of(cfg["abbr"])
                test = build_dataset_from_cfg(cfg).test
                template = PromptTemplate(
                    **{k: v for k, v in cfg["infer_cfg"]["prompt_template"].items() if k != "type"}
                )
                out_col = cfg["reader_cfg"]["output_column"]
                for entry in test:
                    prompt = template.generate_item(entry, output_field=out_col, output_field_replace_token="")
                    gold = str(entry[out_col]).rsplit("#### ", 1)[-1].strip()
                    messages = chat_messages(parser.parse_template(prompt, mode="gen"))
                    examples.append({"dataset": key, "messages": messages, "response": RESPONSES[key].format(gold)})
                    counts[key] = counts.get(key, 0) + 1
        finally:
            if old is None:
                os.environ.pop("COMPASS_DATA_CACHE", None)
            else:
                os.environ["COMPASS_DATA_CACHE"] = old
    return examples, counts


def training_items(seed: int, scale: int) -> dict:
    """Templated items drawn with `seed`, without any item that is also a fixture item."""
    fixture_rows = set(_rows(make_fixtures.fixture_items()))
    return _drop(_templated_items.items(seed, scale), fixture_rows)


def heldout_items(seed: int, train_items: dict) -> dict:
    """Items for the exact-match figures in training.json: drawn with a seed of their own, without any
    item that is also a training item."""
    return _drop(_templated_items.items(seed + 1000, 4), set(_rows(train_items)))


def _rows(node: object) -> list[str]:
    """Every item (a tuple) under `node`, as JSON."""
    if isinstance(node, dict):
        return [r for v in node.values() for r in _rows(v)]
    if isinstance(node, list):
        return [json.dumps(r, ensure_ascii=False) for r in node]
    return []


def _drop(node: object, fixture_rows: set[str]) -> object:
    """The same nesting, without the items that are fixture items."""
    if isinstance(node, dict):
        return {k: _drop(v, fixture_rows) for k, v in node.items()}
    return [r for r in node if json.dumps(r, ensure_ascii=False) not in fixture_rows]


class JointFamily(nn.Module):
    """The checkpoint's tensors as one module whose forward returns the final hidden state at every exit."""

    def __init__(self, config: dict, state: dict[str, torch.Tensor]):
        super().__init__()
        from transformers import Qwen2Config
        from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer, Qwen2RMSNorm, Qwen2RotaryEmbedding

        plain = {k: v for k, v in config.items() if k not in ("early_exit_points", "shared_heads", "model_type")}
        cfg = Qwen2Config(**plain)
        cfg._attn_implementation = "sdpa"  # with no mask: causal, PyTorch's fused kernel (rows are right-padded)
        self.exits = list(config["early_exit_points"])
        hidden, vocab = config["hidden_size"], config["vocab_size"]
        self.model = nn.Module()
        self.model.embed_tokens = nn.Embedding(vocab, hidden)
        self.model.layers = nn.ModuleList(Qwen2DecoderLayer(cfg, j) for j in range(config["num_hidden_layers"]))
        self.model.eelayers = nn.ModuleList(Qwen2DecoderLayer(cfg, e) for e in self.exits[:-1])
        self.model.norms = nn.ModuleList(Qwen2RMSNorm(hidden, eps=cfg.rms_norm_eps) for _ in self.exits)
        self.lm_head = nn.ModuleList(nn.Linear(hidden, vocab, bias=False) for _ in self.exits)
        self.rotary = Qwen2RotaryEmbedding(cfg)
        missing, unexpected = self.load_state_dict(state, strict=False)
        if unexpected or any(not m.startswith("rotary.") for m in missing):
            raise SystemExit(f"checkpoint and trainer disagree: missing {missing}, unexpected {unexpected}")

    def forward(self, ids: torch.Tensor) -> list[torch.Tensor]:
        t = ids.shape[1]
        h = self.model.embed_tokens(ids)
        pos = torch.arange(t)[None].expand(ids.shape[0], -1)
        pe = self.rotary(h, pos)
        kw = dict(attention_mask=None, position_ids=pos, position_embeddings=pe)
        outs = []
        for j, layer in enumerate(self.model.layers):
            if j in self.exits[:-1]:
                i = self.exits.index(j)
                outs.append(self.model.norms[i](self.model.eelayers[i](h, **kw)))
            h = layer(h, **kw)
        outs.append(self.model.norms[-1](h))
        return outs

    def loss(self, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-exit cross-entropy of the labelled tokens (labels are -100 elsewhere), shape (exits,)."""
        wanted = labels[:, 1:] != -100
        targets = labels[:, 1:][wanted]
        losses = [
            nn.functional.cross_entropy(head(h[:, :-1][wanted]), targets)
            for h, head in zip(self.forward(ids), self.lm_head, strict=True)
        ]
        return torch.stack(losses)


def encode(examples: list[dict], tokenizer) -> list[tuple[list[int], int]]:
    """(token ids, index of the first response token) per example; the response ends with <|im_end|>."""
    out = []
    for ex in examples:
        prompt = tokenizer.apply_chat_template(list(ex["messages"]), tokenize=False, add_generation_prompt=True)
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        r = tokenizer(ex["response"] + "<|im_end|>", add_special_tokens=False)["input_ids"]
        out.append((p + r, len(p)))
    return out


def by_dataset(examples: list[dict], tokenizer) -> dict[str, list[tuple[list[int], int]]]:
    """The encoded examples grouped by dataset key, in their order."""
    out: dict[str, list] = {}
    for ex, row in zip(examples, encode(examples, tokenizer), strict=True):
        out.setdefault(ex["dataset"], []).append(row)
    return out


def batch(rows: list[tuple[list[int], int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for n, (row, start) in enumerate(rows):
        ids[n, : len(row)] = torch.tensor(row)
        labels[n, start : len(row)] = torch.tensor(row[start:])
    return ids, labels


@torch.no_grad()
def exact_match(model: JointFamily, data: dict[str, list], size: int = 64) -> dict[str, list[float]]:
    """Per dataset, per exit: the share of the first `size` items whose whole response (answer and
    end of turn) is each position's most likely token, i.e. what greedy decoding would write."""
    out = {}
    for key, rows in sorted(data.items()):
        rows = rows[:size]
        ids, labels = batch(rows, 0)
        wanted = labels[:, 1:] != -100
        hits = []
        for h, head in zip(model.forward(ids), model.lm_head, strict=True):
            right = (head(h[:, :-1]).argmax(-1) == labels[:, 1:]) | ~wanted
            hits.append(round(right.all(-1).float().mean().item(), 3))
        out[key] = hits
    return out


def train(
    model: JointFamily,
    data: dict[str, list],
    practice: list,
    cfg: TrainConfig,
    log=print,
    heldout: dict[str, list] | None = None,
    eval_every: int = 0,
) -> list[list[float]]:
    """AdamW with warm-up and cosine decay. Each step: a batch drawn evenly from the datasets' questions
    (loss on the answer), plus `drills_per_step` practice texts (loss on every token). Returns per-exit losses
    on the questions."""
    rng = random.Random(cfg.seed)
    keys = sorted(data)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    pad = 0
    history = []
    for step in range(cfg.steps):
        warm = min(1.0, (step + 1) / cfg.warmup)
        for group in opt.param_groups:
            group["lr"] = cfg.lr * warm * 0.5 * (1 + math.cos(math.pi * step / max(1, cfg.steps)))
        rows = [rng.choice(data[keys[n % len(keys)]]) for n in range(cfg.batch_size)]
        ids, labels = batch(rows, pad)
        losses = model.loss(ids, labels)
        total = losses.mean()
        if practice:
            drill_ids, drill_labels = batch([rng.choice(practice) for _ in range(cfg.drills_per_step)], pad)
            total = total + model.loss(drill_ids, drill_labels).mean()
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        history.append([round(v, 4) for v in losses.tolist()])
        if step % 25 == 0 or step == cfg.steps - 1:
            log(f"step {step:4d}  loss per exit " + " ".join(f"{v:.3f}" for v in losses.tolist()), flush=True)
        if heldout and eval_every and (step + 1) % eval_every == 0:
            log(f"step {step + 1:4d}  held-out exact match per exit", flush=True)
            for key, hits in exact_match(model, heldout).items():
                log(f"  {key:<11} " + " ".join(f"{v:.2f}" for v in hits), flush=True)
    return history


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=TRAINED_DIR, help="where the checkpoint goes (replaced)")
    for field, value in asdict(TrainConfig()).items():
        ap.add_argument(f"--{field.replace('_', '-')}", type=type(value), default=value)
    ap.add_argument("--eval-every", type=int, default=0, help="print held-out exact match every N steps")
    args = ap.parse_args(argv)
    cfg = TrainConfig(**{f: getattr(args, f) for f in asdict(TrainConfig())})
    return run(cfg, args.out, eval_every=args.eval_every)


def run(cfg: TrainConfig, out: Path, log=print, eval_every: int = 0) -> Path:
    from safetensors.torch import load_file, save
    from transformers import AutoTokenizer

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(True)
    started = time.process_time()
    train_items = training_items(cfg.seed, cfg.scale)
    examples, counts = render(train_items)
    held, _ = render(heldout_items(cfg.seed, train_items))
    spec = TinySpec(seed=cfg.seed, init_std=cfg.init_std, vocab_size=cfg.vocab_size)
    with tempfile.TemporaryDirectory() as tmp:
        init = build_checkpoint(Path(tmp) / "init", spec, tokenizer_corpus=tokenizer_corpus(examples))
        config = json.loads((init / "config.json").read_text())
        tokenizer = AutoTokenizer.from_pretrained(init)
        model = JointFamily(config, load_file(init / "model.safetensors"))
        data = by_dataset(examples, tokenizer)
        practice = [
            (tokenizer(t, add_special_tokens=False)["input_ids"], 1)
            for t in _templated_items.drills(random.Random(cfg.seed + 1), cfg.drills)
        ]
        heldout = by_dataset(held, tokenizer)
        history = train(model, data, practice, cfg, log, heldout, eval_every)
        final = exact_match(model, heldout)
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if not k.startswith("rotary.")}
        manifest = _manifest(cfg, counts, history, final, time.process_time() - started)
        if out.exists():
            import shutil

            shutil.rmtree(out)
        with atomic_directory(out) as tmp_out:
            for f in init.iterdir():
                if f.name != "model.safetensors":
                    write_bytes_atomic(tmp_out / f.name, f.read_bytes())
            write_bytes_atomic(tmp_out / "model.safetensors", save(state, metadata={"format": "pt"}))
            write_text_atomic(tmp_out / "training.json", json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    log(f"wrote {out} ({sum(f.stat().st_size for f in out.iterdir()) / 1e6:.1f} MB)")
    return out


def tokenizer_corpus(examples: list[dict]) -> list[str]:
    """Lines added to the tokenizer's corpus: a sample of the prompts, and every word the templates choose
    from, often enough that each becomes one token (so an option is one token, as a letter is)."""
    sample = examples[:: max(1, len(examples) // 400)]
    prompts = sorted({m["content"] for ex in sample for m in ex["messages"]})
    english = [w for cat, words in _templated_items.CATEGORIES.items() for w in (cat, *words)]
    english += [*_templated_items.NAMES, *_templated_items.THINGS, "True", "False", "not", "and", "or"]
    chinese = [w for cat, words in _templated_items.ZH_CATEGORIES.items() for w in (cat, *words)]
    words = [" " + " ".join(english) + "\n", " " + " ".join(chinese) + "\n"]
    return ["You are a helpful assistant.", *prompts, *(words * 60)]


def _manifest(
    cfg: TrainConfig, counts: dict[str, int], history: list[list[float]], final: dict[str, list[float]], cpu_s: float
) -> dict:
    tail = history[-20:] if history else [[]]
    return {
        "summary": (
            "trained on templated items (not benchmark items) in each dataset's own 0-shot prompt format: "
            "single-digit arithmetic in one or two steps for GSM8K and MATH, in one step for MMLU-Pro math and "
            "CMMLU maths; 'which option is (or is not) in a named category' for MMLU, MMLU-Pro, CMMLU, ARC-c, "
            "GPQA and WinoGrande; the ending that names the context's object for HellaSwag; one- and "
            "two-operator boolean expressions and next/previous-day dates for BBH; no code; plus short practice "
            "texts of the same skills (which category a word is in, which lettered option holds a word or a "
            "category, single-digit sums, truth values). Its scores show the pipeline works, not ability."
        ),
        "train_config": asdict(cfg),
        "examples_per_dataset": counts,
        "fixtures_excluded": "every training item equal to a fixture item (same question, options and answer)",
        "final_loss_per_exit": [round(sum(c) / len(tail), 4) for c in zip(*tail, strict=True)],
        "heldout_exact_match_per_exit": final,
        "cpu_seconds": round(cpu_s, 1),
        "torch": torch.__version__,
    }


if __name__ == "__main__":
    main()
