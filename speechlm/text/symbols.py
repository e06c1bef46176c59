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

# Language tokens: reserved only in a tokenizer trained for several languages
# (``speechlm train-tokenizer --languages``), at fixed ids right after the specials above
# (<es>=5, <fr>=6, <it>=7, <ru>=8, whichever languages its text has). A tokenizer trained without
# them is byte for byte what it was before they existed: its ordinary pieces still start at 5.
LANGUAGE_CODES = ("es", "fr", "it", "ru")
LANGUAGE_SYMBOLS = tuple(f"<{code}>" for code in LANGUAGE_CODES)
FIRST_LANGUAGE_ID = NUM_SPECIALS
