"""Special token ids, fixed in code (never derived from config order).

Every tokenizer in speechlm reserves these ids; ordinary pieces start at ``NUM_SPECIALS``.
"""

BLANK = "<blk>"  # CTC blank; also used as padding for token sequences
UNK = "<unk>"
SOS_EOS = "<sos/eos>"
ASR = "<asr>"  # task marker: speech -> text
TTS = "<tts>"  # task marker: text -> speech

SPECIAL_SYMBOLS = (BLANK, UNK, SOS_EOS, ASR, TTS)
BLANK_ID, UNK_ID, SOS_EOS_ID, ASR_ID, TTS_ID = range(len(SPECIAL_SYMBOLS))
NUM_SPECIALS = len(SPECIAL_SYMBOLS)
