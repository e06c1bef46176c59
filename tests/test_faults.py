"""The fault suite: input a user should not have to trust, and mistakes that used to pass silently
or crash late. Each case failed on the code before it was fixed; each is fast."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import FSDD, REPO, require_shared
from speechlm.base.errors import SpeechlmError


def speechlm(*args, cwd=REPO, env=None):
    return subprocess.run([sys.executable, "-m", "speechlm.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, **(env or {})))


def assert_clean_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "speechlm: error:" in proc.stderr
    for n in needles:
        assert n in proc.stderr, proc.stderr


# ---- untrusted manifests -------------------------------------------------------------------

def command_cut(marker, cut_id="evil-1"):
    """A real FSDD recording whose audio source is a shell command that also creates ``marker``."""
    from lhotse import AudioSource, Recording

    require_shared(FSDD, "FSDD")
    rec = Recording.from_file(FSDD / "0_theo_0.wav", recording_id=cut_id)
    rec.sources = [AudioSource(type="command", channels=[0],
                               source=f"touch {marker} && cat {FSDD / '0_theo_0.wav'}")]
    return rec.to_cut()


def test_command_audio_in_a_manifest_is_not_run(tmp_path):
    from lhotse import CutSet

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.jsonl.gz"
    CutSet.from_cuts([command_cut(marker)]).to_file(evil)
    out = ["--out", tmp_path / "f.jsonl.gz", "--storage", tmp_path / "feats", "--num-jobs", "1"]
    proc = speechlm("compute-fbank", "--cuts", evil, *out)
    assert_clean_error(proc, str(evil), "cut evil-1", "shell command", "--allow-command-audio",
                       "SPEECHLM_ALLOW_COMMAND_AUDIO=1")
    assert not marker.exists()
    # The opt-in runs it (so the manifest above really was a command that would have run).
    proc = speechlm("compute-fbank", "--cuts", evil, *out, "--allow-command-audio")
    assert proc.returncode == 0, proc.stderr
    assert marker.exists()


def test_command_audio_inside_a_mixed_cut_is_refused_by_every_reader(tmp_path, monkeypatch):
    from lhotse import CutSet

    from speechlm.data.features import load_cuts

    cut = command_cut(tmp_path / "pwned", "inner")
    path = tmp_path / "mixed.jsonl.gz"
    CutSet.from_cuts([cut.mix(cut).with_id("mixed-1")]).to_file(path)
    with pytest.raises(SpeechlmError, match="cut mixed-1 reads its audio by running"):
        load_cuts(path)
    monkeypatch.setenv("SPEECHLM_ALLOW_COMMAND_AUDIO", "1")
    assert len(load_cuts(path)) == 1
