"""tools/parse_options.sh (Kaldi semantics) and tools/stage_lib.sh (guards, .done markers, logs)."""

import subprocess
import textwrap

from conftest import REPO

SCRIPT = textwrap.dedent(
    """\
    #!/usr/bin/env bash
    set -euo pipefail
    # begin options
    stage=0          # first stage to run
    stop_stage=3     # last stage to run
    out_name="a b"   # name with a space
    # end options
    . "{tools}/parse_options.sh"
    . "{tools}/stage_lib.sh"
    echo "stage=$stage stop_stage=$stop_stage out_name=$out_name"
    run_stage 1 one "one.txt" bash -c 'echo first > one.txt'
    run_stage 2 two "two.txt" bash -c 'echo second > two.txt; [ -z "${{FAIL:-}}" ]'
    skip_stage 3 three "nothing to do for this corpus"
    """
)


def make(tmp_path):
    script = tmp_path / "run.sh"
    script.write_text(SCRIPT.format(tools=REPO / "tools"))
    script.chmod(0o755)
    return script


def run(script, *args, env=None):
    import os

    return subprocess.run([str(script), *args], cwd=script.parent, capture_output=True, text=True,
                          env=dict(os.environ, PATH=f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}", **(env or {})))


def test_help_lists_every_option_with_default(tmp_path):
    out = run(make(tmp_path), "--help")
    assert out.returncode == 0
    assert "--stage" in out.stdout and "first stage to run [0]" in out.stdout
    assert "--stop-stage" in out.stdout and "[3]" in out.stdout
    assert "--out-name" in out.stdout and "[a b]" in out.stdout


def test_options_set_variables(tmp_path):
    out = run(make(tmp_path), "--stage", "2", "--stop-stage=2", "--out-name", "x y")
    assert out.returncode == 0, out.stderr
    assert "stage=2 stop_stage=2 out_name=x y" in out.stdout
    assert not (tmp_path / "one.txt").exists() and (tmp_path / "two.txt").exists()


def test_unknown_option_is_an_error(tmp_path):
    out = run(make(tmp_path), "--stagee", "1")
    assert out.returncode == 2
    assert "unknown option --stagee" in out.stderr
    out = run(make(tmp_path), "--stage")
    assert out.returncode == 2 and "needs a value" in out.stderr


def test_done_markers_logs_and_skips(tmp_path):
    script = make(tmp_path)
    first = run(script)
    assert first.returncode == 0, first.stderr
    assert "stage 1 (one): done in" in first.stdout
    assert "stage 3 (three): skipped: nothing to do" in first.stdout
    assert (tmp_path / ".done" / "stage-1.done").is_file()
    assert (tmp_path / "exp" / "log" / "stage-2.log").read_text() == ""
    (tmp_path / "one.txt").unlink()
    again = run(script)
    assert "stage 1 (one): already done, skipping" in again.stdout
    assert not (tmp_path / "one.txt").exists()


def test_failed_stage_writes_no_marker(tmp_path):
    script = make(tmp_path)
    out = run(script, env={"FAIL": "1"})
    assert out.returncode == 1
    assert "stage 2 (two): FAILED" in out.stderr
    assert (tmp_path / ".done" / "stage-1.done").exists()
    assert not (tmp_path / ".done" / "stage-2.done").exists()


def test_help_of_recipe_scripts_started_from_anywhere():
    """Recipe scripts cd to their recipe folder before parsing options; --help must still find
    the options block when the script was started by a path relative to another folder."""
    import os

    env = dict(os.environ, PATH=f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}")
    for script, option in (("egs/yesno/run.sh", "--stop-stage"),
                           ("egs/synth_en/local/run_ablation.sh", "--decode-args"),
                           ("egs/synth_en/local/run_tts_ablation.sh", "--tts-conf")):
        out = subprocess.run([script, "--help"], cwd=REPO, capture_output=True, text=True, env=env)
        assert out.returncode == 0, (script, out.stderr)
        assert option in out.stdout, script


def test_quote_args_gives_back_a_pastable_command_line(tmp_path):
    """Scripts record their command in RESULTS.md with quote_args: plain words stay as typed,
    the rest is single-quoted, and the shell reads it back to the same arguments."""
    import os

    args = ["--low-args", "train.num_epochs=20 train.seed=4", "--x", "0.9,1.1", "it's", "", "a$b"]
    script = tmp_path / "q.sh"
    script.write_text(f'. "{REPO / "tools" / "stage_lib.sh"}"\n'
                      'line=$(quote_args "$@"); echo "$line"; eval "printf \'<%s>\' $line"\n')
    env = dict(os.environ, PATH=f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}")
    out = subprocess.run(["bash", str(script), *args], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    line, echoed = out.stdout.split("\n", 1)
    assert line == (" --low-args 'train.num_epochs=20 train.seed=4' --x 0.9,1.1 'it'\\''s' '' "
                    "'a$b'")
    assert echoed == "".join(f"<{a}>" for a in args)
