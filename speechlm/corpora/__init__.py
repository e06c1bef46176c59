"""Corpora, one module each (Lhotse's recipe style): ``download_<name>`` / ``prepare_<name>``
functions plus the ``add_arguments`` / ``prepare`` pair that ``speechlm prepare <name>`` calls.
They are listed in :data:`speechlm.base.registry.CORPORA`; modules here keep lhotse and torch
imports inside functions, so listing the corpora stays fast.

Generic layouts (a Kaldi data dir, an audio folder, a TSV) are not corpora but importers:
:mod:`speechlm.data.importers`, ``speechlm import``.
"""
