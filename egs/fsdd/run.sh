#!/usr/bin/env bash
# FSDD (Free Spoken Digit Dataset): real spoken digits, Conformer-CTC, WER.
#   ./run.sh                                    # official split (index 0-4 = test)
#   ./run.sh --split speaker --heldout-speaker theo   # one speaker held out entirely
#   local/run_speaker_heldout.sh                # all 5 speakers, one table
#   ./run.sh --ssl-conf conf/ssl.yaml           # stage 3: BEST-RQ on the training audio, stage 4
#                                               # fine-tunes from it (data/, exp/ and .done/ *-ssl)
#   local/pretrain_ssl_asterisk.sh              # BEST-RQ on asterisk's audio (no FSDD audio at all)
#   ./run.sh --encoder-init exp/ssl-asterisk/final.pt   # stage 4 fine-tunes from that encoder
#                                               # (data/, exp/ and .done/ *-init)
#   local/run_speaker_heldout.sh --conf conf/asr_spk.yaml --variant spk --speed-perturb '' \
#     --synthetic-voices 122                    # speaker-independent: per-speaker CMVN + digits
#                                               # of 122 synthetic voices, exp/spk-NAME-spk-syn122
#   local/run_speaker_heldout.sh --conf conf/asr_si.yaml --variant si   # utterance CMN instead
set -euo pipefail
cd "$(dirname "$0")"
. ../../tools/asr_options.sh   # stages, conf, train_args, vocab_size, nj, nproc, methods, resume ...

# begin options
corpus_dir=../../../shared/data/fsdd   # local FSDD copy (holds recordings/); downloaded when absent
split=official          # official | speaker
heldout_speaker=        # test speaker for --split speaker (george jackson nicolas theo yweweler)
vocab_size=60           # sentencepiece vocabulary size (incl. 5 special ids)
token_type=bpe          # sentencepiece model type: bpe | unigram | char | word
speed_perturb=0.9,1.1   # speed-perturbed copies of the training set (triples it)
methods=ctc-greedy,hlg-1best   # decoding methods, comma-separated
variant=""              # a name for a configuration tried beside the default: data/, exp/ and .done/ dirs get -NAME (e.g. --conf conf/asr_si.yaml --variant si)
synthetic_voices=0      # > 0: the training split also gets the ten digits read by this many synthetic voices (espeak-ng, Piper; 8 kHz like FSDD), e.g. 122; data/, exp/, .done/ *-synN
encoder_init=""         # an encoder pretrained elsewhere (e.g. exp/ssl-asterisk/final.pt from local/pretrain_ssl_asterisk.sh): stage 4 fine-tunes from it; data/, exp/, .done/ *-init
# end options
. ../../tools/parse_options.sh
. ../../tools/stage_lib.sh
. ../../tools/asr_stages.sh

corpus=fsdd
tag=""
if [ "$split" = speaker ]; then
  [ -n "$heldout_speaker" ] || { echo "run.sh: --split speaker needs --heldout-speaker NAME" >&2; exit 2; }
  tag=spk-$heldout_speaker
fi
if [ -n "$variant" ]; then
  case "$variant" in *[!A-Za-z0-9_.]*) echo "run.sh: --variant $variant: use letters, digits, '_' and '.' only" >&2; exit 2 ;; esac
  tag=${tag:+$tag-}$variant
fi
synthetic=()   # only when asked: the default stage 0 command (and its done marker) stays as it was
case "$synthetic_voices" in
  ''|*[!0-9]*) echo "run.sh: --synthetic-voices $synthetic_voices: give a number of voices (0: none)" >&2; exit 2 ;;
  0) ;;
  *) synthetic=(--synthetic-voices "$synthetic_voices" --synthetic-dir data/synthetic_digits --num-jobs "$nj")
     tag=${tag:+$tag-}syn$synthetic_voices ;;   # data/, exp/, .done/ *-synN: beside the runs without
esac
if [ -n "$ssl_conf" ]; then tag=${tag:+$tag-}ssl; fi   # SSL runs beside the runs from random init
if [ -n "$encoder_init" ]; then
  [ -z "$ssl_conf" ] || { echo "run.sh: --encoder-init and --ssl-conf both give stage 4 an encoder: use one" >&2; exit 2; }
  [ -f "$encoder_init" ] || { echo "run.sh: --encoder-init $encoder_init: no such file (relative paths are from $(pwd)); local/pretrain_ssl_asterisk.sh writes exp/ssl-asterisk/final.pt" >&2; exit 2; }
  tag=${tag:+$tag-}init
  train_args="encoder.init=$encoder_init${train_args:+ $train_args}"
fi
if [ -n "$tag" ]; then
  data=data/$tag; exp=exp/$tag; done_dir=.done/$tag; log_dir=$exp/log
fi
[ -d "$corpus_dir" ] || { echo "run.sh: $corpus_dir not found; FSDD will be downloaded"; corpus_dir=; }
run_stage 0 "data prep" "$data/manifests/" \
  speechlm prepare fsdd ${corpus_dir:+--corpus-dir "$corpus_dir"} --out-dir "$data/manifests" \
    --split "$split" ${heldout_speaker:+--heldout-speaker "$heldout_speaker"} "${synthetic[@]}"
asr_stages
