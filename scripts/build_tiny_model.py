#!/usr/bin/env python
"""Build the workshop's tiny Japanese base model: tokenizer + Mistral-shaped causal LM, pretrained.

The `cpu` profile needs a *pretrained* base model that the project ships (CI and offline machines
cannot reach the Hub). This script trains a byte-fallback BPE tokenizer and pretrains a small
Mistral-architecture model (same module names as the 7B, so one LoRA config serves both) with
plain next-token prediction on the bundled dolly-ja text, leaving out every validation and test
summarization record (``utils.data`` decides the split). It saves the model with
``save_pretrained`` plus a model card, and a loss-curve image under ``images/``.

    python scripts/build_tiny_model.py                       # CPU defaults (~2 h on 2 cores)
    python scripts/build_tiny_model.py --max-minutes 0 --max-steps 200   # a quick smoke build
    python scripts/build_tiny_model.py --resume              # continue from the last checkpoint

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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the script also runs before `pip install -e .`

from utils.data import BUNDLED_PATH, clean_summarization, read_jsonl, split_of  # noqa: E402

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
    """Pretraining documents, held-out texts, and counts of what was left out and why."""
    kept, _ = clean_summarization(records)
    heldout = {"validation": [], "test": []}
    for rec in kept:
        split = split_of(rec["index"])
        if split != "train":
            heldout[split].append(rec)
    heldout_ids = {r["index"] for recs in heldout.values() for r in recs}
    heldout_texts = {r[k] for recs in heldout.values() for r in recs for k in ("input", "output")}
    docs, stats = [], {"records": len(records), "heldout_summarization": len(heldout_ids),
                       "contains_heldout_text": 0}
    for rec in records:
        if rec["index"] in heldout_ids:
            continue
        doc = "\n".join(f for f in (rec[k].strip() for k in ("instruction", "input", "output")) if f)
        if any(text in doc for text in heldout_texts):
            # the same passage (or a longer excerpt around it) under another record, e.g. closed_qa
            stats["contains_heldout_text"] += 1
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


@torch.no_grad()
def copy_test(model, vocab_size: int, device, length: int = 64, trials: int = 16, seed: int = 0) -> dict:
    """Induction check: loss on the 2nd copy of a repeated random sequence vs on the 1st."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    first, second = [], []
    for _ in range(trials):
        seq = torch.randint(300, vocab_size, (length,), generator=g)
        x = torch.cat([torch.tensor([1]), seq, seq]).unsqueeze(0).to(device)
        with autocast(device):
            logits = model(x).logits.float()
        losses = torch.nn.functional.cross_entropy(logits[0, :-1], x[0, 1:], reduction="none")
        first.append(losses[1:length].mean().item())
        second.append(losses[length + 1:].mean().item())
    model.train()
    a, b = sum(first) / trials, sum(second) / trials
    return {"first_copy_loss": a, "second_copy_loss": b, "ratio": b / a}


def autocast(device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", dtype=torch.bfloat16)


def lr_at(step: int, train_seconds: float, args) -> float:
    """Linear warm-up, then cosine to 10 %: over --max-steps, or over --max-minutes when that is set
    (a wall-clock schedule, so a time budget always ends with a fully annealed model)."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    if args.max_minutes:
        progress = train_seconds / (args.max_minutes * 60)
    else:
        progress = (step - args.warmup) / max(1, args.max_steps - args.warmup)
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default="tiny-ja-mistral")
    p.add_argument("--out-dir", type=Path, default=None, help="default: models/<name>")
    p.add_argument("--work-dir", type=Path, default=ROOT / "build" / "tiny_model",
                   help="tokenizer, checkpoints and logs while training (git-ignored)")
    p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--intermediate", type=int, default=768)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--max-steps", type=int, default=100_000)
    p.add_argument("--max-minutes", type=float, default=120.0,
                   help="training-time budget; the cosine schedule follows it (0: schedule by --max-steps)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--patience", type=int, default=0,
                   help="stop after this many evaluations without a lower validation loss and keep the best "
                        "weights (guards against memorising the small corpus in long GPU runs); 0: off")
    p.add_argument("--ckpt-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--resume", action="store_true")
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

    from transformers import PreTrainedTokenizerFast

    tok_dir = work / "tokenizer"
    if args.resume and (tok_dir / "tokenizer.json").is_file():
        tokenizer = PreTrainedTokenizerFast.from_pretrained(tok_dir)
    else:
        t0 = time.time()
        tokenizer = train_tokenizer(docs, args.vocab_size)
        tokenizer.save_pretrained(tok_dir)
        print(f"tokenizer: {len(tokenizer)} tokens, trained in {time.time() - t0:.0f}s")
    stream = encode_docs(tokenizer, docs)
    print(f"pretraining stream: {len(stream):,} tokens = {corpus_stats['characters'] / len(stream):.2f} chars/token")

    model = make_model(tokenizer, args).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f} M parameters on {device}")
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))

    ckpt_path = work / "checkpoint.pt"
    history = {"train": [], "val": []}
    step, train_seconds = 0, 0.0
    if args.resume and ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, history, train_seconds = ckpt["step"], ckpt["history"], ckpt["train_seconds"]
        torch.set_rng_state(ckpt["rng"])
        print(f"resumed at step {step}")

    best = {"loss": min((v["loss"] for v in history["val"]), default=math.inf), "step": step, "state": None}
    gen = torch.Generator().manual_seed(args.seed + step)
    val_texts = heldout["validation"]
    model.train()
    tokens_per_step = args.batch * args.seq_len
    bar = tqdm(total=None if args.max_minutes else args.max_steps, initial=step, desc="pretraining", mininterval=5)
    window_t, window_tokens, window_loss = time.time(), 0, []
    while step < args.max_steps:
        if args.max_minutes and train_seconds / 60 >= args.max_minutes:
            print(f"time budget of {args.max_minutes} min reached at step {step}")
            break
        t_step = time.time()
        starts = torch.randint(0, len(stream) - args.seq_len - 1, (args.batch,), generator=gen)
        batch = torch.stack([stream[s: s + args.seq_len + 1] for s in starts.tolist()]).to(device)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, train_seconds, args)
        with autocast(device):
            logits = model(batch[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        train_seconds += time.time() - t_step
        window_tokens += tokens_per_step
        window_loss.append(loss.item())
        bar.update(1)
        if step % 25 == 0:
            tps = window_tokens / (time.time() - window_t)
            history["train"].append({"step": step, "loss": sum(window_loss) / len(window_loss),
                                     "tokens_per_s": tps, "minutes": train_seconds / 60})
            bar.set_postfix(loss=f"{history['train'][-1]['loss']:.3f}", tok_s=f"{tps:,.0f}")
            window_t, window_tokens, window_loss = time.time(), 0, []
        if step % args.eval_every == 0 or step == args.max_steps:
            val = bits_per_char(model, tokenizer, val_texts, device)
            history["val"].append({"step": step, "minutes": train_seconds / 60, **val})
            tqdm.write(f"step {step}: val loss {val['loss']:.3f} nats/token, {val['bpc']:.3f} bits/char "
                       f"({train_seconds / 60:.1f} min)")
            if args.patience:
                if val["loss"] < best["loss"]:
                    best = {"loss": val["loss"], "step": step,
                            "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
                elif (step - best["step"]) // args.eval_every >= args.patience:
                    tqdm.write(f"validation loss has not improved for {args.patience} evaluations: stopping, "
                               f"keeping the weights of step {best['step']}")
                    break
        if step % args.ckpt_every == 0:
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                        "history": history, "train_seconds": train_seconds, "rng": torch.get_rng_state(),
                        "args": vars(args)}, ckpt_path)
    bar.close()
    if args.patience and best["state"] is not None and best["step"] != step:
        model.load_state_dict(best["state"])
        history["best_step"] = best["step"]
    finish(model, tokenizer, args, out_dir, history, heldout, corpus_stats, n_params, step, train_seconds,
           len(stream), device)


BOUND_SAMPLE = 16  # test inputs in the fixed sample that tests/test_tiny_model.py re-measures
BOUND_TOKENS = 256
BOUND_MARGIN = 0.05  # nats/token of slack for arithmetic differences between machines


def heldout_sample(heldout: dict[str, list[str]]) -> list[str]:
    return heldout["test"][:BOUND_SAMPLE]


def finish(model, tokenizer, args, out_dir, history, heldout, corpus_stats, n_params, step, train_seconds,
           stream_tokens, device, device_name: str | None = None) -> None:
    """Held-out figures, samples, loss curve, save_pretrained and the model card."""
    test = bits_per_char(model, tokenizer, heldout["test"], device)
    sample = bits_per_char(model, tokenizer, heldout_sample(heldout), device, max_len=BOUND_TOKENS)
    copy = copy_test(model, len(tokenizer), device)
    print(f"test inputs: {test['loss']:.3f} nats/token, {test['bpc']:.3f} bits/char; copy test {copy}")
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
        "tokens_seen": step * args.batch * args.seq_len, "train_minutes": train_seconds / 60,
        "device": device_name, "corpus": corpus_stats, "stream_tokens": stream_tokens,
        "heldout_test_inputs": test, "copy_test": copy,
        "heldout_bound": {"sample": BOUND_SAMPLE, "max_tokens": BOUND_TOKENS, "loss": sample["loss"],
                          "bound": round(sample["loss"] + BOUND_MARGIN, 3)}, "history": history, "args": vars(args) | {
            "out_dir": str(out_dir), "work_dir": str(args.work_dir)},
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
    finish(model, tokenizer, args, out_dir, old["history"], heldout, old["corpus"], old["parameters"],
           old["steps"], minutes * 60, old["stream_tokens"], device, device_name=old["device"])


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([h["minutes"] for h in history["train"]], [h["loss"] for h in history["train"]], label="train")
    ax.plot([h["minutes"] for h in history["val"]], [h["loss"] for h in history["val"]], "o-",
            label="held-out validation inputs")
    ax.set_xlabel("training minutes")
    ax.set_ylabel("loss (nats/token)")
    ax.legend(loc="upper right")
    last = history["val"][-1] if history["val"] else None
    ax.set_title("tiny-ja-mistral pretraining" + (f" (validation: {last['bpc']:.2f} bits/char)" if last else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def model_card(r: dict) -> str:
    a, t, c = r["args"], r["heldout_test_inputs"], r["copy_test"]
    samples = "\n".join(f"- `{s['prompt'][-40:]!r}` → `{s['continuation']!r}`" for s in r["samples"])
    return f"""---
license: cc-by-sa-3.0
language: ja
library_name: transformers
pipeline_tag: text-generation
---
# {r['name']}

A *tiny* Japanese base model built by this workshop's own script (`scripts/build_tiny_model.py`)
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
Japanese translation by kunishou), all fields of every record **except** the validation and test
summarization records of the workshop split (`utils.data.split_of`) and any record that shares their
text: {r['corpus']['documents']:,} documents, {r['corpus']['characters']:,} characters,
{r['stream_tokens']:,} tokens ({r['corpus']['characters'] / r['stream_tokens']:.2f} characters/token).
Left out: {r['corpus']['heldout_summarization']} held-out summarization records and
{r['corpus']['contains_heldout_text']} records whose text contains a held-out passage. The weights are a derivative of that data and
carry the same licence (CC BY-SA 3.0).

## Training
- Device: {r['device']}; {r['train_minutes']:.1f} minutes, {r['steps']:,} steps of {a['batch']} × {a['seq_len']} tokens
  ({r['tokens_seen'] / 1e6:.1f} M tokens seen, {r['tokens_seen'] / r['stream_tokens']:.1f} passes over the corpus)
- AdamW (β 0.9/0.95, weight decay {a['weight_decay']}), peak lr {a['lr']}, {a['warmup']} warm-up steps, cosine to 10 %,
  bf16 autocast, gradient clipping 1.0, seed {a['seed']}
- Loss curve: `images/{r['name']}_loss_curve.png`
{('- Build notes: ' + a['notes']) if a.get('notes') else ''}

## Held-out figures (test-split summarization inputs, never seen in pretraining)
| measure | value |
|---|---|
| loss | {t['loss']:.3f} nats/token |
| bits per character | **{t['bpc']:.3f}** |
| characters per token | {t['chars_per_token']:.2f} |
| copy test: loss on 1st copy of a random 64-token sequence | {c['first_copy_loss']:.3f} |
| copy test: loss on 2nd copy | {c['second_copy_loss']:.3f} (ratio {c['ratio']:.2f}) |

Regression bound checked by `tests/test_tiny_model.py`: loss on the first {r['heldout_bound']['sample']} test inputs
(≤ {r['heldout_bound']['max_tokens']} tokens each) = {r['heldout_bound']['loss']:.3f}, must stay ≤ **{r['heldout_bound']['bound']}** nats/token.

## Greedy continuations (as they are)
{samples}

## What it can and cannot do
It has learned Japanese character statistics and common phrases, so its text looks locally Japanese,
but it does not know facts, loses the thread after a few words, and {'can' if c['ratio'] < 0.5 else 'cannot'}
reliably copy from its context (copy-test ratio {c['ratio']:.2f}; 1.0 means no copying at all). In the
workshop, LoRA SFT on it teaches the *format* (answer after `### 応答`, stop with EOS) far more than
content. Use a 7B model (the `gpu` profile) to see real summarisation.
"""


if __name__ == "__main__":
    main()
