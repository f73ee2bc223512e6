"""Export Mistral-7B-v0.1's tokenizer (the `gpu` profile's vocabulary) as a small offline folder.

Why: Japanese Stable LM Base Gamma 7B continues Mistral-7B-v0.1 with its 32,000-token vocabulary.
Without Hub access we still want *real* token counts for the `gpu` profile (max_new_tokens, what
fits in max_length, training-time estimates) and realistic sequence lengths in the GPU benchmark.
The SentencePiece file ships in the Apache-2.0 package ``mistral-common``; this script converts it
to a ``tokenizer.json`` that ``transformers`` loads without sentencepiece, and checks the converted
tokenizer against SentencePiece itself on every dolly-ja text.

Usage (needs ``pip install mistral-common==1.13.1 sentencepiece protobuf`` once, not at run time):

    python scripts/maintainer/export_mistral_tokenizer.py            # writes models/mistral-7b-v0.1-tokenizer
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

# sha256 of mistralai/Mistral-7B-v0.1's tokenizer.model (the same file as mistral-common's tokenizer.model.v1)
MISTRAL_V1_SHA256 = "dadfd56d766715c61d2ef780a525ab43b8e6da4de6865bda3d95fdef5e134055"
TOKENIZER_CONFIG = {
    "tokenizer_class": "LlamaTokenizer",
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "add_bos_token": True,
    "add_eos_token": False,
    "legacy": True,
    "model_max_length": 32768,
    "clean_up_tokenization_spaces": False,
}


def find_spm_model() -> Path:
    import mistral_common

    path = Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1"
    if not path.is_file():
        raise SystemExit(f"{path} not found: install mistral-common==1.13.1")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spm", type=Path, default=None, help="tokenizer.model (default: mistral-common's v1)")
    from utils.recipe.config import MISTRAL_TOKENIZER_DIR

    ap.add_argument("--out", type=Path, default=MISTRAL_TOKENIZER_DIR)
    args = ap.parse_args()

    import sentencepiece as spm
    from transformers import AutoTokenizer

    from utils.recipe.data import load_dolly

    spm_path = args.spm or find_spm_model()
    digest = hashlib.sha256(spm_path.read_bytes()).hexdigest()
    if digest != MISTRAL_V1_SHA256:
        raise SystemExit(f"{spm_path}: sha256 {digest} is not Mistral-7B-v0.1's tokenizer.model")

    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(spm_path, Path(tmp) / "tokenizer.model")
        (Path(tmp) / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG), encoding="utf-8")
        tok = AutoTokenizer.from_pretrained(tmp)  # converts the SentencePiece model to a fast tokenizer
        args.out.mkdir(parents=True, exist_ok=True)
        tok.save_pretrained(args.out)

    tok = AutoTokenizer.from_pretrained(args.out)
    sp = spm.SentencePieceProcessor(model_file=str(spm_path))
    records, _ = load_dolly(verbose=False)
    texts = [t for r in records for t in (r["instruction"], r["input"], r["output"]) if t]
    ours = tok(texts)["input_ids"]
    theirs = [[sp.bos_id()] + ids for ids in sp.encode(texts)]
    same = sum(a == b for a, b in zip(ours, theirs))
    n_ours, n_theirs = sum(map(len, ours)), sum(map(len, theirs))
    check = {
        "source": "mistral-common 1.13.1, mistral_common/data/tokenizer.model.v1",
        "source_sha256": digest,
        "vocab_size": len(tok),
        "texts_compared": len(texts),
        "texts_identical": same,
        "tokens_converted": n_ours,
        "tokens_sentencepiece": n_theirs,
        "characters": sum(map(len, texts)),
    }
    (args.out / "conversion_check.json").write_text(json.dumps(check, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(check, indent=2))


if __name__ == "__main__":
    main()
