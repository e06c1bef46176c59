"""The bottom layer every other layer may use: errors, configs, checkpoint files, device choice,
logging set-up and the registries of model families, decoding methods and corpora.

Nothing here imports another part of speechlm (a test keeps imports running one way).
"""
