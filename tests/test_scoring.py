"""Scoring: hand-computed WER counts and the exact text of the icefall-style reports."""

import pytest

from speechlm.base.errors import SpeechlmError
from speechlm.scoring.report import (
    RESULTS_HEADER,
    append_results_row,
    merge_error_runs,
    read_wer_summary,
    results_row,
    score_and_write,
    score_methods,
    write_error_stats,
    write_recogs,
    write_wer_summary,
)
from speechlm.scoring.wer import compute_cer, compute_wer


def utt(utt_id, ref, hyp):
    return (utt_id, ref.split(), hyp.split())


# u1: a (b->x) c (d->*)   u2: a b (*->e)   -> 1 sub, 1 del, 1 ins over 6 words
SMALL = [utt("u2", "a b", "a b e"), utt("u1", "a b c d", "a x c")]


def test_sub_and_del():
    s = compute_wer([utt("u", "a b c d", "a x c")])
    assert (s.num_words, s.subs, s.dels, s.ins, s.num_errors, s.num_corr) == (4, 1, 1, 0, 2, 2)
    assert s.wer == pytest.approx(50.0)
    assert s.summary() == "%WER 50.00% [2 / 4, 0 ins, 1 del, 1 sub ]"


def test_insertion():
    s = compute_wer([utt("u", "a b", "a z b")])
    assert (s.ins, s.dels, s.subs) == (1, 0, 0)
    assert s.wer == pytest.approx(50.0)
    assert s.ins_counts == {"z": 1}


def test_empty_hyp_is_all_deletions():
    s = compute_wer([utt("u", "a b c", "")])
    assert (s.dels, s.ins, s.subs) == (3, 0, 0)
    assert s.wer == pytest.approx(100.0)


def test_empty_ref_utterance_counts_insertions_but_all_empty_raises():
    s = compute_wer([utt("u0", "", "z y"), utt("u1", "a b", "a b")])
    assert (s.ins, s.num_words) == (2, 2)
    assert s.wer == pytest.approx(100.0)
    with pytest.raises(SpeechlmError, match="references of all 2 utterances are empty"):
        compute_wer([utt("u0", "", "z"), utt("u1", "", "")])


def test_results_sorted_by_utt_id_and_counts_accumulate():
    s = compute_wer(SMALL)
    assert [u.utt_id for u in s.utts] == ["u1", "u2"]
    assert (s.num_words, s.subs, s.dels, s.ins, s.num_corr) == (6, 1, 1, 1, 4)
    assert s.sub_counts == {("b", "x"): 1}
    assert s.word_counts["b"] == [1, 1, 0, 0, 0]  # corr, ref_sub, hyp_sub, ins, del


def test_cer_counts_characters_without_spaces():
    s = compute_cer([("u", "ab c", "abd")])
    assert (s.num_words, s.subs, s.dels, s.ins) == (3, 1, 0, 0)
    assert s.wer == pytest.approx(100 / 3)


@pytest.mark.parametrize(
    "bad, match",
    [
        ([("u", "a b", ["a"])], "list of non-empty word strings"),
        ([("u", ["a"], ["a"]), ("u", ["b"], ["b"])], "appears twice"),
        ([("", ["a"], ["a"])], "non-empty string"),
        ([("u", ["a"])], "must be \\(utt_id, ref_words, hyp_words\\)"),
        ([("u", ["*"], ["a"])], "reserved"),
    ],
)
def test_bad_input_raises_clear_error(bad, match):
    with pytest.raises(SpeechlmError, match=match):
        compute_wer(bad)


def test_merge_error_runs_joins_adjacent_errors():
    ali = [("a", "a"), ("b", "x"), ("c", "*"), ("d", "d"), ("*", "e")]
    assert merge_error_runs(ali) == [("a", "a"), ("b c", "x"), ("d", "d"), ("*", "e")]


def test_errs_file_exact_text(tmp_path):
    path = tmp_path / "errs-test-greedy.txt"
    wer = write_error_stats(path, "test", SMALL)
    assert wer == 50.0
    expected = (
        "%WER = 50.00\n"
        "Errors: 1 insertions, 1 deletions, 1 substitutions, over 6 reference words (4 correct)\n"
        "Search below for sections starting with PER-UTT DETAILS:, SUBSTITUTIONS:, DELETIONS:, "
        "INSERTIONS:, PER-WORD STATS:\n"
        "\n"
        "PER-UTT DETAILS: corr or (ref->hyp)  \n"
        "u1:\ta (b->x) c (d->*)\n"
        "u2:\ta b (*->e)\n"
        "\n"
        "SUBSTITUTIONS: count ref -> hyp\n"
        "1   b -> x\n"
        "\n"
        "DELETIONS: count ref\n"
        "1   d\n"
        "\n"
        "INSERTIONS: count hyp\n"
        "1   e\n"
        "\n"
        "PER-WORD STATS: word  corr tot_errs count_in_ref count_in_hyp\n"
        "x   0 1 0 1\n"
        "e   0 1 0 1\n"
        "d   0 1 1 0\n"
        "b   1 1 2 1\n"
        "c   1 0 1 1\n"
        "a   2 0 2 2\n"
    )
    assert path.read_text() == expected


def test_errs_sections_sorted_by_count_then_word_descending(tmp_path):
    results = [utt("u1", "a a c e", "b b d f"), utt("u2", "p q r", "")]
    write_error_stats(tmp_path / "errs.txt", "t", results)
    text = tmp_path.joinpath("errs.txt").read_text()
    subs = text.split("SUBSTITUTIONS: count ref -> hyp\n")[1].split("\n\n")[0]
    assert subs == "2   a -> b\n1   e -> f\n1   c -> d"
    dels = text.split("DELETIONS: count ref\n")[1].split("\n\n")[0]
    assert dels == "1   r\n1   q\n1   p"


def test_recogs_file(tmp_path):
    path = tmp_path / "recogs-test-greedy.txt"
    write_recogs(path, SMALL)
    assert path.read_text() == (
        "u1:\tref=['a', 'b', 'c', 'd']\n"
        "u1:\thyp=['a', 'x', 'c']\n"
        "u2:\tref=['a', 'b']\n"
        "u2:\thyp=['a', 'b', 'e']\n"
    )


def test_wer_summary_best_first_with_extra_columns(tmp_path):
    path = tmp_path / "wer-summary-test-epoch10.txt"
    write_wer_summary(
        path,
        [("beam_search", 12.5, {"RTF": 0.25}), ("greedy_search", 10.0, {"RTF": 0.05}), ("ctc", 30.123, None)],
    )
    assert path.read_text() == (
        "settings\tWER\tRTF\n"
        "greedy_search\t10.00\t0.05\n"
        "beam_search\t12.50\t0.25\n"
        "ctc\t30.12\t-\n"
    )


def test_results_md_appended_twice_keeps_one_header(tmp_path):
    md = tmp_path / "RESULTS.md"
    md.write_text("# yesno results\n\nSome notes that must survive.\n")
    stats = compute_wer([utt("u", "a b c d", "a x c")])
    row = results_row("test", "greedy", stats, "./run.sh --stage 5 --stop-stage 5", rtf=0.1, notes="lm|ctc")
    append_results_row(md, dict(row, date="2024-01-02", commit="abc1234"), section="exp/asr")
    append_results_row(md, dict(row, method="beam", date="2024-01-03"), section="exp/asr")
    text = md.read_text()
    assert text.startswith("# yesno results\n\nSome notes that must survive.\n\n## exp/asr\n\n")
    assert text.count(RESULTS_HEADER) == 1
    lines = text.splitlines()
    i = lines.index(RESULTS_HEADER)
    assert lines[i + 2] == (
        "| 2024-01-02 | abc1234 | test | greedy | 50.00 | - | 2 (0/1/1) / 4 | 0.1 | lm\\|ctc | "
        "`./run.sh --stage 5 --stop-stage 5` |"
    )
    assert lines[i + 3].startswith("| 2024-01-03 | ") and "| test | beam | 50.00 |" in lines[i + 3]
    assert len(lines) == i + 4


def test_results_md_rows_go_to_their_own_section_not_the_last_table(tmp_path):
    """Stage 5 writes into the section named for the run (exp dir), creating it above
    'Earlier experiments' when absent; other sections and their tables stay as they were."""
    md = tmp_path / "RESULTS.md"
    md.write_text("# r\n\n## exp/asr: CTC\n\n" + RESULTS_HEADER + "\n|---|\n| old asr |\n\nnote\n\n"
                  "## exp/lm: text LM\n\n- ppl 3.0\n\n## Earlier experiments\n\n- old\n")
    stats = compute_wer([utt("u", "a", "a")])
    append_results_row(md, results_row("test", "m1", stats, "cmd1"), section="exp/asr")
    append_results_row(md, results_row("test", "m2", stats, "cmd2"), section="exp/new")
    from speechlm.scoring.results_md import append_to_section

    append_to_section(md, "exp/lm", ["- ppl 2.9"])
    lines = md.read_text().splitlines()
    asr = lines.index("## exp/asr: CTC")
    assert lines[asr + 4] == "| old asr |" and "| m1 |" in lines[asr + 5] and lines[asr + 7] == "note"
    new, lm, earlier = (lines.index(h) for h in ("## exp/new", "## exp/lm: text LM", "## Earlier experiments"))
    assert asr < lm < new < earlier
    assert lines[new + 2] == RESULTS_HEADER and "| m2 |" in lines[new + 4]
    assert lines[lm + 2: lm + 5] == ["- ppl 3.0", "", "- ppl 2.9"]
    assert lines[-1] == "- old"


def test_section_key_is_the_exp_dir_relative_to_the_recipe(tmp_path):
    from speechlm.scoring.results_md import section_key

    assert section_key(tmp_path / "exp" / "asr", tmp_path / "RESULTS.md") == "exp/asr"
    assert section_key("/elsewhere/exp", tmp_path / "RESULTS.md") == "/elsewhere/exp"


def test_results_md_rejects_missing_keys(tmp_path):
    with pytest.raises(SpeechlmError, match="missing \\['command'\\]"):
        append_results_row(
            tmp_path / "R.md",
            dict(test_set="t", method="m", wer=1.0, ins=0, dels=0, subs=0, num_words=1),
        )
    assert not (tmp_path / "R.md").exists()


def test_score_and_write_names_files_and_summarises(tmp_path):
    methods = {
        "greedy_search": [utt("u1", "a b c d", "a x c")],
        "beam_search": [utt("u1", "a b c d", "a b c")],
    }
    wers = score_and_write(
        tmp_path, "test", "epoch-10", methods, {"beam_search": {"RTF": 0.5}},
        results_md=tmp_path / "RESULTS.md", command="./run.sh --stage 5", section=tmp_path / "exp",
    )
    assert wers == {"greedy_search": 50.0, "beam_search": 25.0}
    for m in methods:
        assert (tmp_path / f"recogs-test-{m}-epoch-10.txt").exists()
        assert (tmp_path / f"errs-test-{m}-epoch-10.txt").read_text().startswith("%WER = ")
    summary = (tmp_path / "wer-summary-test-epoch-10.txt").read_text().splitlines()
    assert summary == ["settings\tWER\tCER\tRTF", "beam_search\t25.00\t25.00\t0.5",
                       "greedy_search\t50.00\t50.00\t-"]
    md = (tmp_path / "RESULTS.md").read_text().splitlines()
    assert md[0] == "## exp"
    assert [r.split(" | ")[3] for r in md[4:]] == ["beam_search", "greedy_search"]


def test_score_and_write_empty_tag(tmp_path):
    score_and_write(tmp_path, "dev", "", {"ctc": [utt("u", "a", "a")]})
    assert (tmp_path / "errs-dev-ctc.txt").exists()
    assert (tmp_path / "wer-summary-dev.txt").exists()


def test_cer_goes_with_wer_in_every_report(tmp_path):
    """One wrong ending: a word error (50% WER) but one character of nine (11.11% CER)."""
    scores = score_methods(tmp_path, "test_es", "", {"ctc-greedy": [utt("u1", "hola mundo", "hola mundos")]},
                           results_md=tmp_path / "RESULTS.md", command="./run.sh", section=tmp_path / "exp")
    assert scores == {"ctc-greedy": {"wer": 50.0, "cer": 11.11}}
    errs = (tmp_path / "errs-test_es-ctc-greedy.txt").read_text().splitlines()
    assert errs[:2] == ["%WER = 50.00", "%CER = 11.11 (1 / 9 characters, spaces not counted)"]
    assert (tmp_path / "wer-summary-test_es.txt").read_text().splitlines() == [
        "settings\tWER\tCER", "ctc-greedy\t50.00\t11.11"]
    row = (tmp_path / "RESULTS.md").read_text().splitlines()[-1]
    assert "| test_es | ctc-greedy | 50.00 | 11.11 | 1 (0/0/1) / 2 |" in row
    assert read_wer_summary(tmp_path / "wer-summary-test_es.txt") == [("ctc-greedy", 50.0, {"CER": "11.11"})]
