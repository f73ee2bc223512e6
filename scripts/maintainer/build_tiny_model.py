#!/usr/bin/env python
"""Build the workshop's tiny Japanese base model: tokenizer + Mistral-shaped causal LM, pretrained to copy.

The `cpu` profile needs a *pretrained* base model that the project ships (CI and offline machines
cannot reach the Hub). This script trains a byte-fallback BPE tokenizer and pretrains a small
Mistral-architecture model (stock ``MistralForCausalLM``, same module names as the 7B, so one LoRA
config serves both) with next-token prediction on the bundled dolly-ja text, leaving out every
validation and test summarization record and the summaries of all summarization records
(``build_corpus``). Summaries are largely extractive, so the model must learn to *copy* from its
context: short windows first, then long ones; a share of windows carries a span of its own text
repeated later in the window (annealed down); warm-up then cosine to a low lr; and at every
evaluation the held-out bits/char and four copy ratios decide which checkpoint is kept.
It saves the model with ``save_pretrained``, a model card, and the curves under ``images/``.

    python scripts/maintainer/build_tiny_model.py --stages scripts/maintainer/tiny_model_stages.json --threads 2   # the shipped model (~70 min on 2 cores)
    python scripts/maintainer/build_tiny_model.py --max-steps 200 --eval-every 100   # a quick smoke build
    python scripts/maintainer/build_tiny_model.py --resume              # continue from the last checkpoint (--work-dir)
    python scripts/maintainer/build_tiny_model.py --init-from models/x  # start from a saved model instead of random weights

Runs on CUDA when available (bf16 autocast), otherwise on CPU.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the script also runs before `pip install -e .`

from utils.recipe.data import BUNDLED_PATH, TASK_CATEGORY, clean_summarization, read_jsonl, split_of  # noqa: E402

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]
_MAX_POS = 1024  # context length of the tiny model
SAMPLE_PROMPTS = [
    "日本の首都は",
    "富士山は",
    "機械学習とは、",
    "### 指示\n次の文章を要約してください。\n\n### 入力\n光学の分野では、分散プリズムは光を分散させる光学プリズムである。\n\n### 応答\n",
]


# ---------------------------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------------------------
def build_corpus(records: list[dict]) -> tuple[list[str], dict[str, list[str]], dict]:
    """Pretraining documents, held-out texts, and counts of what was left out and why.

    Left out: every validation/test summarization record (whole), the *summary* of every other
    summarization record (the train summaries are what 04's SFT teaches: a base model that has
    already read them would start SFT on memorised pairs, unlike a real 7B), and any document of
    another category that contains one of those left-out texts (the same passage under closed_qa).
    """
    kept, _ = clean_summarization(records)
    heldout = {"validation": [], "test": []}
    for rec in kept:
        split = split_of(rec["index"])
        if split != "train":
            heldout[split].append(rec)
    heldout_ids = {r["index"] for recs in heldout.values() for r in recs}
    heldout_texts = {r[k] for recs in heldout.values() for r in recs for k in ("input", "output")}
    summaries = {r["output"].strip() for r in records if r["category"] == TASK_CATEGORY and r["output"].strip()}
    long_summaries = {t for t in summaries if len(t) >= 20}  # "はい" alone would match everything
    docs, stats = [], {"records": len(records), "heldout_summarization": len(heldout_ids),
                       "contains_heldout_text": 0, "summaries_left_out": 0, "contains_summary": 0}
    for rec in records:
        if rec["index"] in heldout_ids:
            continue
        fields = ("instruction", "input", "output")
        if rec["category"] == TASK_CATEGORY:
            fields = ("instruction", "input")
            stats["summaries_left_out"] += bool(rec["output"].strip())
        doc = "\n".join(f for f in (rec[k].strip() for k in fields) if f)
        if any(text in doc for text in heldout_texts):
            # the same passage (or a longer excerpt around it) under another record, e.g. closed_qa
            stats["contains_heldout_text"] += 1
            continue
        if rec["category"] != TASK_CATEGORY and any(text in doc for text in long_summaries):
            stats["contains_summary"] += 1
            continue
        docs.append(doc)
    stats["documents"] = len(docs)
    stats["characters"] = sum(len(d) for d in docs)
    texts = {split: [r["input"] for r in recs] for split, recs in heldout.items()}
    return docs, texts, stats


# ---------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------
def train_tokenizer(docs: list[str], vocab_size: int):
    """Byte-fallback BPE; '\\n' is always its own token so a completion never merges with the prompt."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    byte_tokens = [f"<0x{i:02X}>" for i in range(256)]
    n_fixed = len(SPECIAL_TOKENS) + len(byte_tokens)

    def new_tokenizer(model):
        tok = Tokenizer(model)
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(r"\n"), behavior="isolated"),
            pre_tokenizers.Digits(individual_digits=True),
        ])
        tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
        return tok

    draft = new_tokenizer(models.BPE(unk_token="<unk>"))
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - n_fixed + len(SPECIAL_TOKENS),
                                  special_tokens=SPECIAL_TOKENS, limit_alphabet=2500,
                                  min_frequency=2, show_progress=False)
    draft.train_from_iterator(docs, trainer=trainer)
    learned = draft.get_vocab()
    merges = json.loads(draft.to_str())["model"]["merges"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]

    # Final vocabulary: specials, the 256 byte tokens (regular tokens, so that
    # decode(skip_special_tokens=True) keeps byte-fallback characters), then the learned pieces.
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS + byte_tokens)}
    for token, _ in sorted(learned.items(), key=lambda kv: kv[1]):
        if token not in vocab:
            vocab[token] = len(vocab)
    tok = new_tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True))
    tok.add_special_tokens(SPECIAL_TOKENS)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="<pad>", model_max_length=_MAX_POS)


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------
def make_model(tokenizer, args):
    from transformers import MistralConfig, MistralForCausalLM

    config = MistralConfig(
        vocab_size=len(tokenizer), hidden_size=args.hidden, intermediate_size=args.intermediate,
        num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
        max_position_embeddings=_MAX_POS, sliding_window=None, rope_theta=10000.0,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(args.seed)
    return MistralForCausalLM(config)


def encode_docs(tokenizer, docs: list[str]) -> torch.Tensor:
    """One long stream: <s> doc </s> <s> doc </s> ..."""
    ids: list[int] = []
    enc = tokenizer(docs, add_special_tokens=True)["input_ids"]
    for piece in enc:
        ids.extend(piece)
        ids.append(tokenizer.eos_token_id)
    return torch.tensor(ids, dtype=torch.long)


@torch.no_grad()
def bits_per_char(model, tokenizer, texts: list[str], device, max_len: int = _MAX_POS) -> dict:
    """Tokenizer-independent held-out figure: total nats / characters / ln 2."""
    model.eval()
    nats, n_tokens, n_chars = 0.0, 0, 0
    for text in texts:
        ids = tokenizer(text, add_special_tokens=True)["input_ids"][:max_len]
        chars = len(tokenizer.decode(ids, skip_special_tokens=True))
        x = torch.tensor([ids], device=device)
        with autocast(device):
            logits = model(x).logits.float()
        loss = torch.nn.functional.cross_entropy(logits[0, :-1], x[0, 1:], reduction="sum")
        nats += loss.item()
        n_tokens += len(ids) - 1
        n_chars += chars
    model.train()
    return {"loss": nats / n_tokens, "bpc": nats / n_chars / math.log(2), "chars_per_token": n_chars / n_tokens,
            "tokens": n_tokens, "chars": n_chars}


COPY_LENGTH = 64  # tokens in the span that is read twice
COPY_GAP = 320  # tokens of other text between the two reads in the "long" copy tests (a 03/05 passage is ~100-350)


@torch.no_grad()
def _copy_ratio(model, device, spans: list[torch.Tensor], fillers: list[torch.Tensor] | None) -> dict:
    """Loss on the 2nd read of each span divided by the loss on its 1st read (1.0 = no copying)."""
    model.eval()
    first, second = [], []
    for i, span in enumerate(spans):
        gap = fillers[i] if fillers else torch.tensor([], dtype=torch.long)
        x = torch.cat([torch.tensor([1]), span, gap, span]).unsqueeze(0).to(device)
        with autocast(device):
            logits = model(x).logits.float()
        losses = torch.nn.functional.cross_entropy(logits[0, :-1], x[0, 1:], reduction="none")
        n = len(span)
        first.append(losses[1:n].mean().item())  # skip the first token: nothing predicts it
        second.append(losses[-(n - 1):].mean().item())
    model.train()
    a, b = sum(first) / len(first), sum(second) / len(second)
    return {"first_copy_loss": a, "second_copy_loss": b, "ratio": b / a}


def copy_test(model, vocab_size: int, device, length: int = COPY_LENGTH, trials: int = 16, seed: int = 0,
              gap_texts: list[torch.Tensor] | None = None) -> dict:
    """Induction check on random token sequences: the 2nd read can only be predicted by copying.

    With ``gap_texts`` (tokenised held-out text), each pair is separated by ``COPY_GAP`` tokens of it.
    """
    g = torch.Generator().manual_seed(seed)
    spans = [torch.randint(300, vocab_size, (length,), generator=g) for _ in range(trials)]
    fillers = [t[:COPY_GAP] for t in gap_texts[:trials]] if gap_texts else None
    return _copy_ratio(model, device, spans, fillers)


def natural_copy_test(model, passages: list[torch.Tensor], device, length: int = COPY_LENGTH,
                      trials: int = 16, long: bool = False) -> dict:
    """Copy check on natural held-out text: a passage's first ``length`` tokens read twice
    (optionally ``COPY_GAP`` tokens of another passage in between): the copying summarisation needs."""
    usable = [p for p in passages if len(p) >= length][: trials + 1]
    spans = [p[:length] for p in usable[:trials]]
    fillers = None
    if long:
        others = [p for p in passages if len(p) >= COPY_GAP]
        fillers = [others[(i + 7) % len(others)][:COPY_GAP] for i in range(len(spans))]
    return _copy_ratio(model, device, spans, fillers)


def encode_passages(tokenizer, texts: list[str]) -> list[torch.Tensor]:
    return [torch.tensor(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]


def copy_suite(model, tokenizer, passages: list[torch.Tensor], device) -> dict:
    """The four copy ratios logged at every evaluation: random / natural text, short / long distance."""
    long_fillers = [p for p in passages if len(p) >= COPY_GAP]
    return {
        "random_short": copy_test(model, len(tokenizer), device)["ratio"],
        "random_long": copy_test(model, len(tokenizer), device, gap_texts=long_fillers)["ratio"],
        "natural_short": natural_copy_test(model, passages, device)["ratio"],
        "natural_long": natural_copy_test(model, passages, device, long=True)["ratio"],
    }


def autocast(device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", dtype=torch.bfloat16)


def lr_at(step: int, args) -> float:
    """Linear warm-up, constant until ``--decay-start`` (default: right after warm-up), then cosine
    down to ``--min-lr-ratio`` of the peak at ``--max-steps`` (warm-up/stable/decay: copying keeps
    improving while the lr stays up, and the decay at the end wins the language model back)."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    start = max(args.warmup, getattr(args, "decay_start", None) or args.warmup)
    if step < start:
        return args.lr
    progress = min(1.0, (step - start) / max(1, args.max_steps - start))
    floor = args.min_lr_ratio
    return args.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def seq_len_at(step: int, args) -> int:
    """Short windows first (copying emerges sooner with fewer tokens per step), then the long ones
    that cover 03/05's prompt + summary lengths."""
    return args.short_seq_len if step < args.short_fraction * args.max_steps else args.seq_len


def repeat_share_at(step: int, args) -> float:
    """Share of windows carrying a repeated span, annealed linearly from --repeat-share to --repeat-share-end
    (over the current stage when --stages is used: from its first step to its last)."""
    start = getattr(args, "stage_start", 0)
    progress = min(1.0, (step - start) / max(1, args.max_steps - start))
    return args.repeat_share + (args.repeat_share_end - args.repeat_share) * progress


def sample_batch(stream: torch.Tensor, batch: int, seq_len: int, repeat_share: float,
                 gen: torch.Generator, span_every: int = 0) -> torch.Tensor:
    """Random windows of the token stream; a ``repeat_share`` of them get a 16-64-token span of
    their own text inserted again later in the window (natural text read twice, as in a summary
    that copies a phrase of its passage). ``span_every`` > 0: one such span per that many tokens
    of window (more copy signal per long window); 0: one span per window."""
    rows = []
    for _ in range(batch):
        if torch.rand((), generator=gen).item() < repeat_share:
            n_spans = max(1, seq_len // span_every) if span_every else 1
            spans = [int(torch.randint(16, 65, (), generator=gen)) for _ in range(n_spans)]
            n = seq_len + 1 - sum(spans)
            start = int(torch.randint(0, len(stream) - n, (), generator=gen))
            row = stream[start: start + n]
            for span in spans:
                src = int(torch.randint(0, len(row) - span, (), generator=gen))
                dst = int(torch.randint(src + span, len(row) + 1, (), generator=gen))
                row = torch.cat([row[:dst], row[src: src + span], row[dst:]])
            rows.append(row)
        else:
            start = int(torch.randint(0, len(stream) - seq_len - 1, (), generator=gen))
            rows.append(stream[start: start + seq_len + 1])
    return torch.stack(rows)


SELECTION_RATIOS = ("random_short", "natural_short")  # the copy ratios the targets are set on


PAUSE_SECONDS = 60  # a step this long was a pause, not training (a step takes ~1 s on 2 CPU cores)


STAGE_KEYS = ("lr", "warmup", "decay_start", "min_lr_ratio", "max_steps", "short_fraction", "repeat_share",
              "repeat_share_end", "span_every")  # what a --stages entry may override


def plain_args(args) -> dict:
    """The parsed arguments as JSON-ready values (paths as strings), for the card, the report and the stage log."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


def stage_args(args) -> dict:
    """The schedule-defining arguments of one run or resumed stage (listed in the model card)."""
    keys = STAGE_KEYS + ("short_seq_len", "seq_len", "batch", "threads", "init_from")
    return {k: v for k, v in plain_args(args).items() if k in keys}


def read_stages(path: Path) -> list[dict]:
    """A multi-stage schedule (JSON list): each stage runs ``until`` a step with its own overrides of
    STAGE_KEYS (``max_steps`` is then the horizon of that stage's lr decay / repeat anneal; it defaults to
    ``until``). One file = one reproducible recipe, run start to end by a single command."""
    try:
        stages = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SystemExit(f"--stages {path}: cannot read a JSON list of stages ({err})")
    previous = 0
    for i, stage in enumerate(stages):
        unknown = set(stage) - set(STAGE_KEYS) - {"until", "note"}
        if unknown or not isinstance(stage.get("until"), int) or stage["until"] <= previous:
            raise SystemExit(f"--stages {path}: stage {i + 1} needs an increasing integer 'until' and only the keys "
                             f"{', '.join(STAGE_KEYS)} (got {sorted(stage)})")
        previous = stage["until"]
    return stages


def apply_stage(args, stages: list[dict], step: int) -> None:
    """Set ``args`` to the stage that contains ``step`` (the first whose ``until`` is above it)."""
    for i, stage in enumerate(stages):
        if step < stage["until"]:
            args.stage_start = stages[i - 1]["until"] if i else 0
            args.max_steps = stage["until"]
            for key, value in stage.items():
                if key in STAGE_KEYS:
                    setattr(args, key, value)
            return


def selection_score(val: dict, args) -> float:
    """Lower is better: how far the worst measure is from its target (bits/char and the copy ratios
    of a span read twice, random and natural), so the kept checkpoint best meets all targets at once."""
    return max(val["bpc"] / args.target_bpc, *(val["copy"][k] / args.target_copy for k in SELECTION_RATIOS))


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default="tiny-ja-mistral")
    p.add_argument("--out-dir", type=Path, default=None, help="default: models/<name>")
    p.add_argument("--work-dir", type=Path, default=Path.home() / ".cache" / "tiny-ja-mistral-build",
                   help="tokenizer, checkpoints and logs while training (outside the repository, so a later "
                        "run can --resume)")
    p.add_argument("--init-from", type=Path, default=None,
                   help="start from this saved model folder (its tokenizer too) instead of random weights")
    p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--intermediate", type=int, default=768)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--short-seq-len", type=int, default=256, help="window length in the first phase")
    p.add_argument("--short-fraction", type=float, default=0.6, help="share of --max-steps with short windows")
    p.add_argument("--seq-len", type=int, default=512, help="window length in the second phase")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeat-share", type=float, default=0.5,
                   help="share of windows with an in-window repeated span at the start ...")
    p.add_argument("--repeat-share-end", type=float, default=0.1, help="... and at --max-steps")
    p.add_argument("--span-every", type=int, default=0,
                   help="one repeated span per this many window tokens (0: one span per window)")
    p.add_argument("--max-steps", type=int, default=7_500, help="the lr, window and repeat schedules follow it")
    p.add_argument("--max-minutes", type=float, default=0.0, help="stop early after this much training time (0: no limit)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--min-lr-ratio", type=float, default=0.05, help="cosine floor, as a share of --lr")
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--decay-start", type=int, default=None,
                   help="step where the cosine decay starts (default: right after warm-up); lr stays at --lr until then")
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--eval-every", type=int, default=300)
    p.add_argument("--target-bpc", type=float, default=3.6, help="held-out bits/char target (checkpoint choice)")
    p.add_argument("--target-copy", type=float, default=0.5, help="copy-ratio target (checkpoint choice)")
    p.add_argument("--patience", type=int, default=0,
                   help="stop after this many evaluations without a better selection score; 0: off")
    p.add_argument("--ckpt-every", type=int, default=300)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--stages", type=Path, default=None,
                   help="JSON list of stages ({'until': step, overrides...}): the whole recipe in one run")
    p.add_argument("--notes", default="", help="free text for the model card's build notes")
    p.add_argument("--card-only", action="store_true",
                   help="re-measure the saved model in models/<name> and rewrite its report and card")
    return p.parse_args(argv)


def main(argv=None) -> None:
    from tqdm.auto import tqdm

    args = parse_args(argv)
    out_dir = args.out_dir or ROOT / "models" / args.name
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    random.seed(args.seed)
    torch.manual_seed(args.seed)

    records = read_jsonl(BUNDLED_PATH)
    docs, heldout, corpus_stats = build_corpus(records)
    print(f"corpus: {corpus_stats}")
    if args.card_only:
        rewrite_card(out_dir, heldout, device, args.notes)
        return

    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    tok_dir = work / "tokenizer"
    if args.init_from:
        tokenizer = PreTrainedTokenizerFast.from_pretrained(args.init_from)
    elif args.resume and (tok_dir / "tokenizer.json").is_file():
        tokenizer = PreTrainedTokenizerFast.from_pretrained(tok_dir)
    else:
        t0 = time.time()
        tokenizer = train_tokenizer(docs, args.vocab_size)
        print(f"tokenizer: {len(tokenizer)} tokens, trained in {time.time() - t0:.0f}s")
    tokenizer.save_pretrained(tok_dir)
    stream = encode_docs(tokenizer, docs)
    print(f"pretraining stream: {len(stream):,} tokens = {corpus_stats['characters'] / len(stream):.2f} chars/token")

    if args.init_from:
        model = AutoModelForCausalLM.from_pretrained(args.init_from, torch_dtype=torch.float32).to(device)
        print(f"initialised from {args.init_from}")
    else:
        model = make_model(tokenizer, args).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f} M parameters on {device}")
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))

    ckpt_path = work / "checkpoint.pt"
    best_path = work / "best.pt"
    history = {"train": [], "val": []}
    step, train_seconds, tokens_seen = 0, 0.0, 0
    best = {"score": math.inf, "step": 0}
    if args.resume and ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, history, train_seconds = ckpt["step"], ckpt["history"], ckpt["train_seconds"]
        tokens_seen, best = ckpt["tokens_seen"], ckpt["best"]
        torch.set_rng_state(ckpt["rng"])
        print(f"resumed at step {step}")
        for h in history["val"]:  # the selection rule may have changed since: rescore what was logged
            if "copy" in h:
                h["score"] = selection_score(h, args)
        best["score"] = next((h["score"] for h in history["val"] if h["step"] == best["step"]), math.inf)
    stages = read_stages(args.stages) if args.stages else []
    end_step = stages[-1]["until"] if stages else args.max_steps
    history.setdefault("stages", [])

    def enter_stage():
        if stages:
            apply_stage(args, stages, step)
        if not history["stages"] or history["stages"][-1]["args"] != stage_args(args):
            history["stages"].append({"from_step": step, "args": stage_args(args)})
            if stages:
                tqdm.write(f"stage from step {step}: {stage_args(args)}")

    enter_stage()

    gen = torch.Generator().manual_seed(args.seed + step)
    val_texts = heldout["validation"]
    val_passages = encode_passages(tokenizer, val_texts)
    model.train()
    bar = tqdm(total=end_step, initial=step, desc="pretraining", mininterval=10)
    window_t, window_tokens, window_loss = time.time(), 0, []
    while step < end_step:
        if stages and step >= args.max_steps:
            enter_stage()
        if args.max_minutes and train_seconds / 60 >= args.max_minutes:
            print(f"time budget of {args.max_minutes} min reached at step {step}")
            break
        t_step = time.time()
        seq_len = seq_len_at(step, args)
        batch = sample_batch(stream, args.batch, seq_len, repeat_share_at(step, args), gen, args.span_every).to(device)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args)
        with autocast(device):
            logits = model(batch[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        step_seconds = time.time() - t_step
        if step_seconds > PAUSE_SECONDS:  # the job was stopped (kill -STOP) while other work used the cores
            history["paused_minutes"] = history.get("paused_minutes", 0.0) + step_seconds / 60
        else:
            train_seconds += step_seconds
        tokens_seen += args.batch * seq_len
        window_tokens += args.batch * seq_len
        window_loss.append(loss.item())
        bar.update(1)
        if step % 25 == 0:
            tps = window_tokens / (time.time() - window_t)
            history["train"].append({"step": step, "loss": sum(window_loss) / len(window_loss), "tokens": tokens_seen,
                                     "tokens_per_s": tps, "minutes": train_seconds / 60, "lr": lr_at(step - 1, args),
                                     "seq_len": seq_len, "repeat_share": repeat_share_at(step - 1, args)})
            bar.set_postfix(loss=f"{history['train'][-1]['loss']:.3f}", tok_s=f"{tps:,.0f}")
            window_t, window_tokens, window_loss = time.time(), 0, []
        if step % args.eval_every == 0 or step == end_step:
            val = bits_per_char(model, tokenizer, val_texts, device)
            val["copy"] = copy_suite(model, tokenizer, val_passages, device)
            val["score"] = selection_score(val, args)
            # bits_per_char's own "tokens" (the evaluation's token count) must not replace the tokens seen so far
            history["val"].append({"step": step, "minutes": train_seconds / 60, **val, "tokens": tokens_seen})
            c = val["copy"]
            tqdm.write(f"step {step} ({tokens_seen / 1e6:.1f} M tokens, {train_seconds / 60:.1f} min): "
                       f"val {val['bpc']:.3f} bits/char; copy random {c['random_short']:.2f}/{c['random_long']:.2f}, "
                       f"natural {c['natural_short']:.2f}/{c['natural_long']:.2f} (short/long); score {val['score']:.3f}")
            if val["score"] < best["score"]:
                best = {"score": val["score"], "step": step}
                torch.save({"model": model.state_dict(), "step": step, "tokens_seen": tokens_seen}, best_path)
            elif args.patience and (step - best["step"]) // args.eval_every >= args.patience:
                tqdm.write(f"no better checkpoint for {args.patience} evaluations: stopping")
                break
        if step % args.ckpt_every == 0 or step == end_step:
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                        "history": history, "train_seconds": train_seconds, "rng": torch.get_rng_state(),
                        "tokens_seen": tokens_seen, "best": best, "args": vars(args)}, ckpt_path)
    bar.close()
    if best_path.is_file() and best["step"] != step:
        kept = torch.load(best_path, map_location=device, weights_only=False)
        model.load_state_dict(kept["model"])
        print(f"keeping the checkpoint of step {best['step']} (best selection score {best['score']:.3f})")
    history["best_step"] = best["step"]
    finish(model, tokenizer, args, out_dir, history, heldout, corpus_stats, n_params, step, train_seconds,
           len(stream), device, tokens_seen=tokens_seen)


BOUND_SAMPLE = 16  # test inputs in the fixed sample that tests/test_tiny_model.py re-measures
BOUND_TOKENS = 256
BOUND_MARGIN = 0.05  # nats/token of slack for arithmetic differences between machines


def heldout_sample(heldout: dict[str, list[str]]) -> list[str]:
    return heldout["test"][:BOUND_SAMPLE]


def finish(model, tokenizer, args, out_dir, history, heldout, corpus_stats, n_params, step, train_seconds,
           stream_tokens, device, device_name: str | None = None, tokens_seen: int | None = None) -> None:
    """Held-out figures (test split), samples, curves, save_pretrained and the model card."""
    test = bits_per_char(model, tokenizer, heldout["test"], device)
    sample = bits_per_char(model, tokenizer, heldout_sample(heldout), device, max_len=BOUND_TOKENS)
    copy = copy_test(model, len(tokenizer), device)
    copies = copy_suite(model, tokenizer, encode_passages(tokenizer, heldout["test"]), device)
    print(f"test inputs: {test['loss']:.3f} nats/token, {test['bpc']:.3f} bits/char; copy ratios {copies}")
    samples = generate_samples(model, tokenizer, device)

    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.float().cpu()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    if device_name is None:
        device_name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({torch.get_num_threads()} thread{'s' if torch.get_num_threads() > 1 else ''})"
    report = {
        "name": args.name, "parameters": n_params, "vocab_size": len(tokenizer), "steps": step,
        "tokens_seen": tokens_seen if tokens_seen is not None else step * args.batch * args.seq_len,
        "train_minutes": train_seconds / 60,
        "device": device_name, "corpus": corpus_stats, "stream_tokens": stream_tokens,
        "heldout_test_inputs": test, "copy_test": copy, "copy_ratios_test": copies,
        "heldout_bound": {"sample": BOUND_SAMPLE, "max_tokens": BOUND_TOKENS, "loss": sample["loss"],
                          "bound": round(sample["loss"] + BOUND_MARGIN, 3)}, "history": history,
        "args": plain_args(args) | {"out_dir": str(out_dir)},
        "samples": samples,
    }
    (out_dir / "training_report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1))
    plot_curve(history, ROOT / "images" / f"{args.name}_loss_curve.png")
    (out_dir / "README.md").write_text(model_card(report), encoding="utf-8")
    size = sum(f.stat().st_size for f in out_dir.iterdir()) / 1e6
    print(f"saved to {out_dir} ({size:.1f} MB)")


def rewrite_card(out_dir: Path, heldout, device, notes: str = "") -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    old = json.loads((out_dir / "training_report.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(out_dir).to(device)
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    kept = {k: v for k, v in old["args"].items() if k not in ("out_dir", "work_dir", "notes")}
    args = argparse.Namespace(**kept, out_dir=out_dir, work_dir=Path(old["args"]["work_dir"]),
                              notes=notes or old["args"].get("notes", ""))
    minutes = old["train_minutes"]
    seen = {h["step"]: h["tokens"] for h in old["history"]["train"]}
    for h in old["history"]["val"]:  # runs before the fix logged the evaluation's own token count here
        h["tokens"] = seen.get(h["step"], h["tokens"])
    finish(model, tokenizer, args, out_dir, old["history"], heldout, old["corpus"], old["parameters"],
           old["steps"], minutes * 60, old["stream_tokens"], device, device_name=old["device"],
           tokens_seen=old["tokens_seen"])


@torch.no_grad()
def generate_samples(model, tokenizer, device) -> list[dict]:
    model.eval()
    out = []
    for prompt in SAMPLE_PROMPTS:
        enc = tokenizer(prompt, return_tensors="pt").to(device)
        ids = model.generate(**enc, max_new_tokens=48, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        out.append({"prompt": prompt, "continuation": tokenizer.decode(ids[0, enc["input_ids"].shape[1]:],
                                                                       skip_special_tokens=True)})
    return out


def plot_curve(history: dict, path: Path) -> None:
    """Two panels over tokens seen: the losses, and the four copy ratios with the 0.5 target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    tokens = lambda rows: [h.get("tokens", 0) / 1e6 for h in rows]  # noqa: E731
    ax.plot(tokens(history["train"]), [h["loss"] for h in history["train"]], label="train (with repeated spans)")
    ax.plot(tokens(history["val"]), [h["loss"] for h in history["val"]], "o-", ms=3, label="held-out validation inputs")
    ax.set_xlabel("tokens seen (M)")
    ax.set_ylabel("loss (nats/token)")
    last = history["val"][-1] if history["val"] else None
    ax.set_title("loss" + (f" (last validation: {last['bpc']:.2f} bits/char)" if last else ""))
    ax.legend(loc="upper right")
    with_copy = [h for h in history["val"] if "copy" in h]
    for key, style in [("random_short", "C0--"), ("random_long", "C0-"), ("natural_short", "C1--"), ("natural_long", "C1-")]:
        bx.plot(tokens(with_copy), [h["copy"][key] for h in with_copy], style, label=key.replace("_", ", "))
    bx.axhline(0.5, color="gray", lw=0.8, ls=":")
    if "best_step" in history:
        best = [h for h in with_copy if h["step"] == history["best_step"]]
        for h in best:
            for b_ax in (ax, bx):
                b_ax.axvline(h["tokens"] / 1e6, color="green", lw=0.8, ls=":")
    bx.set_ylim(0, 1.1)
    bx.set_xlabel("tokens seen (M)")
    bx.set_ylabel("loss on 2nd read / loss on 1st read")
    bx.set_title("copy ratio (1.0 = no copying; target <= 0.5)")
    bx.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def schedule_lines(r: dict) -> str:
    """The recipe as the card states it: one line per stage of the run (``--stages`` or resumed runs)."""
    a = r["args"]
    stages = r["history"].get("stages") or [{"from_step": 0, "args": a}]
    ends = [s["from_step"] for s in stages[1:]] + [r["steps"]]
    lines = [f"- batch {a['batch']} windows; AdamW (β 0.9/0.95, weight decay {a['weight_decay']}), {a['warmup']} warm-up "
             f"steps; bf16 autocast, gradient clipping 1.0, seed {a['seed']}; the stages "
             f"({'`' + Path(a['stages']).name + '`' if a.get('stages') else 'resumed runs'}):"]
    for stage, end in zip(stages, ends):
        s = stage["args"]
        start = stage["from_step"]
        horizon = s["max_steps"]
        switch = int(s["short_fraction"] * horizon)
        short = (f"{s['short_seq_len']}" if end <= switch else f"{s['seq_len']}" if start >= switch
                 else f"{s['short_seq_len']}- then (from step {switch:,}) {s['seq_len']}")
        decay = s.get("decay_start") or s["warmup"]
        lr = (f"lr {s['lr']:g} constant" if decay >= min(end, horizon)
              else f"lr {s['lr']:g}, cosine from step {decay:,} to {s['min_lr_ratio']:.0%} of it at step {horizon:,}")
        every = f"one per {s['span_every']} tokens" if s.get("span_every") else "one per window"
        lines.append(f"  - steps {start:,}-{end:,}: {short}-token windows; {lr}; repeated spans ({every}) in "
                     f"{s['repeat_share']:.0%} -> {s['repeat_share_end']:.0%} of the windows")
    return "\n".join(lines)


def model_card(r: dict) -> str:
    a, t = r["args"], r["heldout_test_inputs"]
    c = r.get("copy_ratios_test") or {"random_short": r["copy_test"]["ratio"]}
    corpus = r["corpus"]
    samples = "\n".join(f"- `{s['prompt'][-40:]!r}` → `{s['continuation']!r}`" for s in r["samples"])
    copy_rows = "\n".join(f"| copy ratio, {label} | {c[key]:.2f} |" for key, label in [
        ("random_short", "random 64 tokens read twice in a row"),
        ("random_long", f"random 64 tokens, {COPY_GAP} tokens of text in between"),
        ("natural_short", "a test passage's first 64 tokens read twice in a row"),
        ("natural_long", f"a test passage's first 64 tokens, {COPY_GAP} tokens of another passage in between")] if key in c)
    best = r["history"].get("best_step")
    can_copy = all(v <= 0.5 for v in c.values())
    schedule = schedule_lines(r)
    return f"""---
license: cc-by-sa-3.0
language: ja
library_name: transformers
pipeline_tag: text-generation
---
# {r['name']}

A *tiny* Japanese base model built by this workshop's own script (`scripts/maintainer/build_tiny_model.py`)
so that the `cpu` profile runs offline through exactly the same code as the 7B models.
It is for teaching the mechanics of LoRA SFT, not for real use.

## Architecture
- `MistralForCausalLM` (same module names as Mistral-7B: q/k/v/o/gate/up/down_proj), tied input/output embeddings
- {r['parameters'] / 1e6:.2f} M parameters: hidden {a['hidden']}, {a['layers']} layers, {a['heads']} heads
  ({a['kv_heads']} KV heads), MLP {a['intermediate']}, context {_MAX_POS} tokens
- Tokenizer: byte-fallback BPE, {r['vocab_size']:,} tokens (`<unk>`, `<s>` BOS, `</s>` EOS, `<pad>`, 256 byte
  tokens, learned pieces); `\\n` is always its own token; no normalisation, so any text round-trips

## Data and licence
Pretrained with plain next-token prediction on databricks-dolly-15k-ja (CC BY-SA 3.0, Databricks, Inc.;
Japanese translation by kunishou): {corpus['documents']:,} documents, {corpus['characters']:,} characters,
{r['stream_tokens']:,} tokens ({corpus['characters'] / r['stream_tokens']:.2f} characters/token). Left out:
- the {corpus['heldout_summarization']} validation and test summarization records of the workshop split
  (`utils.recipe.data.split_of`), whole, and {corpus['contains_heldout_text']} records whose text contains one of their passages;
- the **summary** of every other summarization record ({corpus.get('summaries_left_out', 0)} train summaries; their
  instruction and passage stay): notebook 04's SFT then teaches pairs the model has never read, as with a real 7B,
  and {corpus.get('contains_summary', 0)} records of other categories that contain one of those summaries.

The weights are a derivative of that data and carry the same licence (CC BY-SA 3.0).

## Training recipe (why: induction heads, i.e. copying from the context)
Summaries of dolly-ja are largely extractive, so a base model that cannot copy from its prompt cannot learn
*content* in SFT. Copying appears after a number of tokens that grows with batch x context, and sooner with
repeated spans in the data (Olsson et al. 2022; Bi-Induct 2025). So:
{schedule}
- at every evaluation: held-out validation bits/char and the four copy ratios below (validation passages); the kept
  checkpoint is the one whose worst measure is closest to its target (bits/char ≤ {a.get('target_bpc', 3.6)}, short-distance copy
  ratios, random and natural, ≤ {a.get('target_copy', 0.5)}){f": step {best:,}" if best else ""}.
- Device: {r['device']}; {r['train_minutes']:.1f} minutes, {r['steps']:,} steps, {r['tokens_seen'] / 1e6:.1f} M tokens seen
  ({r['tokens_seen'] / r['stream_tokens']:.1f} passes over the corpus)
- Curves (loss and copy ratios vs tokens): `images/{r['name']}_loss_curve.png`
{('- Build notes: ' + a['notes']) if a.get('notes') else ''}

## Held-out figures (test-split summarization inputs, never seen in pretraining)
| measure | value |
|---|---|
| loss | {t['loss']:.3f} nats/token |
| bits per character | **{t['bpc']:.3f}** |
| characters per token | {t['chars_per_token']:.2f} |
{copy_rows}

Copy ratio = loss on the second read / loss on the first read (1.0: no copying; the workshop's target is ≤ 0.5).
Regression bound checked by `tests/test_tiny_model.py`: loss on the first {r['heldout_bound']['sample']} test inputs
(≤ {r['heldout_bound']['max_tokens']} tokens each) = {r['heldout_bound']['loss']:.3f}, must stay ≤ **{r['heldout_bound']['bound']}** nats/token.

## Greedy continuations (as they are)
{samples}

## What it can and cannot do
It has learned Japanese character statistics and common phrases, so its text looks locally Japanese,
but it does not know facts and loses the thread after a few words. It {'can' if can_copy else 'cannot reliably'} copy
from its context (copy ratios above), which is what lets LoRA SFT in the `cpu` profile teach it to pick phrases of
the passage for its summary, not only the format. Use a 7B model (the `gpu` profile) to see real summarisation.
"""


if __name__ == "__main__":
    main()
