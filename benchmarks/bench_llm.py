"""The shipped SmolLM2-135M as speechlm loads it: load time, perplexity on held-out book sentences
against the same architecture with random weights, and forward / LoRA training step cost.

Sentences: three novels from ../shared/data/text_en, one per author (:data:`BOOKS`; header and
licence stripped; lines about the edition, all-caps headings and bracketed notes left out), every
k-th sentence of 6-40 words up to ``--sentences``. Public-domain books may well be in SmolLM2's
pretraining text: "held out" means held out from speechlm's training, not necessarily from SmolLM2's. Perplexity is per LLM token, each sentence framed by the LLM's <|endoftext|>,
on the text as written and lower-cased without punctuation (as ASR transcripts are); and, for
context, on passages of 10 consecutive sentences of the same books.
The first run dequantises the GGUF file and caches the float weights (``load_s``); the second
load reads the cache (``load_cached_s``).

    OMP_NUM_THREADS=1 python benchmarks/bench_llm.py [--sentences 300]
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import resource
import sys
import time
from pathlib import Path

import torch

from common import REPO, emit
from speechlm.base.llm_files import cache_dir, shipped_gguf
from speechlm.models.llama import LlamaLM, sentence_log_likelihood
from speechlm.models.llm_weights import cache_paths, load_llm
from speechlm.models.lora import apply_lora

TEXT_EN = REPO.parent / "shared" / "data" / "text_en"
BOOKS = ("austen/Persuasion.txt", "london/White_Fang.txt", "wilde/The_Picture_of_Dorian_Gray.txt")
_NOT_PROSE = re.compile(r"http|www\.|@|gutenberg|produced by|transcribed|[\[\]_*]", re.I)
_CAPS = re.compile(r"\b[A-Z]{2,}\b")
_START = re.compile(r"^\*\*\* ?START OF.*$", re.M | re.I)
_END = re.compile(r"^\*\*\* ?END OF.*$", re.M | re.I)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’]?\s+(?=[\"'“‘]?[A-Z])")


def book_sentences(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    start, end = _START.search(text), _END.search(text)
    body = text[start.end() if start else 0: end.start() if end else len(text)]
    out = []
    for para in re.split(r"\n\s*\n", body):
        para = " ".join(para.split())
        out.extend(s.strip() for s in _SENTENCE_END.split(para) if s.strip())
    return [s for s in out if 6 <= len(s.split()) <= 40 and not _CAPS.search(s) and not _NOT_PROSE.search(s)]


def held_out_sentences(n: int) -> list[str]:
    books = [TEXT_EN / b for b in BOOKS]
    per_book = -(-n // len(books))
    picked = []
    for book in books:
        sents = book_sentences(book)
        step = max(1, len(sents) // per_book)
        picked.extend(sents[::step][:per_book])
    return picked[:n]


def held_out_passages(n: int, per_passage: int = 10) -> list[str]:
    """``n`` runs of ``per_passage`` consecutive sentences (same books and filter): the model
    reads each sentence with the ones before it as context."""
    per_book = -(-n // len(BOOKS))
    out = []
    for book in BOOKS:
        sents = book_sentences(TEXT_EN / book)
        step = max(per_passage, len(sents) // per_book)
        out.extend(" ".join(sents[i: i + per_passage]) for i in range(0, len(sents) - per_passage, step)[:per_book])
    return out[:n]


def asr_style(s: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]+", " ", s.lower().replace("’", "'")).split())


@torch.no_grad()
def perplexity(lm: LlamaLM, ids: list[list[int]], boundary: int, batch: int = 16) -> float:
    total, count = 0.0, 0
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for b in range(0, len(order), batch):
        ll, n = sentence_log_likelihood(lm, [ids[i] for i in order[b: b + batch]], boundary)
        total, count = total + ll, count + n
    return math.exp(-total / count)


def step_costs(lm: LlamaLM, vocab: int, batch: int = 8, length: int = 64) -> dict:
    tokens = torch.randint(0, vocab, (batch, length))
    with torch.no_grad():
        lm(tokens)  # warm-up
        t0 = time.perf_counter()
        lm(tokens)
        forward_s = time.perf_counter() - t0
    apply_lora(lm, ["q_proj", "v_proj"], rank=8, alpha=16.0)
    lm.train()
    opt = torch.optim.AdamW([p for p in lm.parameters() if p.requires_grad], lr=1e-4)
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(lm(tokens[:, :-1]).transpose(1, 2), tokens[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return {"step_tokens": batch * length, "forward_s": round(forward_s, 3),
            "lora_train_step_s": round(times[-1], 3),
            "lora_trainable_params": sum(p.numel() for p in lm.parameters() if p.requires_grad)}


def asr_step_costs(layers: int, batch: int = 8, seconds: float = 3.0, words: int = 10) -> dict:
    """One training step of the speech-LM ASR on SmolLM2 (model.kind speechlm-llm, default encoder
    and LoRA config): ``batch`` utterances of ``seconds`` of random features, ``words``-word targets."""
    from speechlm.base.config import load_config
    from speechlm.models.speechlm_llm import build_speechlm_llm, llm_speech_tokenizer

    cfg = load_config(None, ["model.kind=speechlm-llm", f"llm.num_layers={layers}"])
    view = llm_speech_tokenizer(cfg)
    model = build_speechlm_llm(cfg, view.vocab_size).train()
    frames = int(seconds * 100)
    feats, lens = torch.randn(batch, frames, 80), torch.full((batch,), frames)
    targets = [view.encode(" ".join(["the quick brown fox"] * 3).split(maxsplit=words)[0]) for _ in range(batch)]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        ctc, att = model(feats, lens, targets)
        opt.zero_grad()
        (0.3 * ctc + 0.7 * att).backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {f"asr_step_s_{layers}_layers": round(times[-1], 2), f"asr_trainable_params_{layers}_layers": trainable}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sentences", type=int, default=300)
    ap.add_argument("--cache", default="", help="cache dir for the float weights (default ~/.cache/speechlm/llm)")
    ap.add_argument("--parts", default="ppl,step,asr", help="what to measure: ppl, step (LLM forward and "
                    "LoRA step), asr (speech-LM ASR training step, 30 and 8 LLM layers)")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    gguf_path = shipped_gguf("smollm2")
    was_cached = cache_paths(gguf_path, cache_dir(args.cache))[0].is_file()
    t0 = time.perf_counter()
    lm, tok = load_llm("smollm2", cache=args.cache)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    lm, tok = load_llm("smollm2", cache=args.cache)
    load_cached_s = time.perf_counter() - t0
    sentences = held_out_sentences(args.sentences) if "ppl" in parts else []
    figures = {}
    for style, texts in (("book", sentences), ("asr_style", [asr_style(s) for s in sentences])) if sentences else ():
        ids = [tok.encode(s) for s in texts]
        figures[f"ppl_smollm2_{style}"] = round(perplexity(lm, ids, tok.sos_eos_id), 2)
        if style == "book":
            figures["tokens"] = sum(len(i) + 1 for i in ids)
            torch.manual_seed(0)
            random_lm = LlamaLM(lm.cfg, tok.sos_eos_id).eval()
            figures["ppl_random_book"] = round(perplexity(random_lm, ids, tok.sos_eos_id), 1)
            del random_lm
            passages = [tok.encode(p) for p in held_out_passages(len(sentences) // 10)]
            figures["ppl_smollm2_passages_of_10"] = round(perplexity(lm, passages, tok.sos_eos_id, batch=4), 2)
    costs = step_costs(lm, lm.vocab_size) if "step" in parts else {}
    for layers in (30, 8) if "asr" in parts else ():
        costs.update(asr_step_costs(layers))
    emit({"benchmark": "llm", "model": gguf_path.name, "params_m": round(lm.cfg.num_parameters() / 1e6, 1),
          **({"sentences": len(sentences)} if sentences else {}), **figures, "cache_existed": was_cached, "load_s": round(load_s, 1),
          "load_cached_s": round(load_cached_s, 2), **costs,
          "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)})


if __name__ == "__main__":
    main()
