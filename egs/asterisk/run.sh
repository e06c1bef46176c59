#!/usr/bin/env bash
# Asterisk voice prompts: real studio speech, one voice per language (es, fr, it, ru), about 25
# minutes each; Conformer-CTC, test WER and CER on prompts whose sentences are not in training.
#   ./run.sh                          # monolingual Spanish: data/es, exp/es (stages 0-5)
#   ./run.sh --langs ru               # another language: data/ru, exp/ru
#   ./run.sh --langs es,fr,it,ru      # one multilingual model: a shared tokenizer with language
#                                     # tokens; decoded on each language's test (test_es ...)
#   local/run_all.sh                  # the four monolingual runs, the multilingual one, the table
#   ./run.sh --langs es,fr,it,ru --unlabeled it_menardi --ssl-conf conf/ssl.yaml \
#     --ssl-splits "train unlabeled"  # stage 3: BEST-RQ on the training audio of the languages and
#                                     # the unlabeled folders (never test), stage 4 fine-tunes from it
#                                     # (data/RUN-ssl, exp/RUN-ssl)
# The run of --tts-lang (es) also pretrains a text LM on its training transcripts (stage 3) and
# fine-tunes TTS on its recorded voice (tools/tts_stages.sh, as synth_en): MCD and round-trip
# WER/CER by this run's ASR model on the test prompts, mel figures.
# Transcript normalisation and the split: speechlm/corpora/asterisk.py, speechlm/text/normalize.py
# (rules also in RESULTS.md).
set -euo pipefail
cd "$(dirname "$0")"
. ../../tools/asr_options.sh   # stages, conf, train_args, vocab_size, nj, nproc, methods, resume ...

# begin options
corpus_dir=../../../shared/data/asterisk   # holds es/ fr/ it/ ru/ (prompt tree + core-sounds-<lang>.txt); downloaded when absent
langs=es                # one language code: a monolingual model; several, comma-separated: one multilingual model
unlabeled=""            # folders of corpus_dir imported as audio without text (split 'unlabeled'), e.g. it_menardi
vocab_size=""           # sentencepiece vocabulary size (incl. 5 special ids, and 4 language ids when multilingual); "": 100 for one language, 250 for several
speed_perturb=0.9,1.1   # 19 minutes of one voice: two speed-perturbed copies of it as well
methods=ctc-greedy,hlg-1best   # hlg-1best: lexicon + 3-gram of the training transcripts only
tts_lang=es             # the monolingual run whose voice TTS learns (stage 3 LM + TTS stages); "" for none
lm_conf=conf/lm.yaml    # stage 3 (--tts-lang run): text LM on the training transcripts
lm_args=""              # stage 3: config overrides
tts_conf=conf/tts.yaml  # TTS config (tools/tts_stages.sh)
tts_args=""             # TTS config overrides, e.g. "train.num_epochs=5"
# end options
. ../../tools/parse_options.sh
. ../../tools/stage_lib.sh
. ../../tools/asr_stages.sh
. ../../tools/tts_stages.sh

corpus=asterisk
run=${langs//,/_}       # es | es_fr_it_ru ...
ssl_tag=${ssl_conf:+-ssl}   # SSL runs beside the runs from random init
data=data/$run$ssl_tag; exp=exp/$run$ssl_tag; done_dir=.done/$run$ssl_tag; log_dir=$exp/log
if [ "$run" = "$langs" ]; then
  splits="train dev test"
  vocab_size=${vocab_size:-100}
else
  vocab_size=${vocab_size:-250}   # the union of four alphabets (Latin with accents, Cyrillic) alone is ~90
  test_sets=$(for l in ${langs//,/ }; do printf 'test_%s ' "$l"; done)
  test_sets=${test_sets% }
  splits="train dev $test_sets"
  tokenizer_args="--languages"   # language tokens <es> <fr> <it> <ru> at fixed ids after the specials
fi
if [ -n "$ssl_conf" ] && [ -n "$unlabeled" ]; then splits="$splits unlabeled"; fi   # fbank for stage 3
tts=""
if [ "$run" = "$tts_lang" ] && [ -z "$ssl_conf" ]; then
  tts=1 tts_voice=corpus lm_text=$data/text/lm_text.txt   # the training transcripts, one a line
fi
[ -d "$corpus_dir" ] || { echo "run.sh: $corpus_dir not found; the upstream tarballs will be downloaded"; corpus_dir=; }

stage_data() {
  speechlm prepare asterisk ${corpus_dir:+--corpus-dir "$corpus_dir"} --out-dir "$data/manifests" \
    --langs "$langs" ${unlabeled:+--unlabeled "$unlabeled"} || return 1
  if [ -n "${lm_text:-}" ]; then
    mkdir -p "$(dirname "$lm_text")"
    gunzip -c "$data/manifests/${corpus}_supervisions_train.jsonl.gz" |
      python3 -c 'import json, sys; print("".join(json.loads(l)["text"] + "\n" for l in sys.stdin), end="")' \
      > "$lm_text"
  fi
}
run_stage 0 "data prep" "$data/manifests/${lm_text:+, $lm_text}" stage_data
asr_stages
if [ -n "$tts" ]; then tts_stages; fi
