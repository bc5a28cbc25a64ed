"""Reading SkyRL's progress from its output (pure): real tqdm bars, the console tracker's
``Step N:`` dicts of both SkyRL lines (the stand-in's output, as SkyRL prints it), the same
through Ray's driver (prefixes, colour), chunks cut anywhere, and output that is not
progress, which must give nothing at all."""
from __future__ import annotations

import io
import pprint
import random

import pytest

from ot_hpc import demo_progress
from ot_hpc.runner.progress import (MAX_DICT_LINES, REWARD_HISTORY, ProgressParser, TrainingProgress,
                                    bracket_depth)
from ot_hpc.runner.progress_text import (Bar, StepMetrics, clock_seconds, headline_keys, parse_bar,
                                         seconds_per_step, split_ray_prefix, step_header)

tqdm = pytest.importorskip("tqdm").tqdm
BAR = "Training Batches Processed"
CYAN, RESET = "\x1b[36m", "\x1b[0m"


def meter(n, total, elapsed, **kwargs):
    return tqdm.format_meter(n, total, elapsed, prefix=BAR, **kwargs)


def events_of(text, cuts=None):
    parser = ProgressParser()
    events = []
    if cuts is None:
        events += parser.feed(text)
    else:
        start = 0
        for cut in sorted(cuts) + [len(text)]:
            events += parser.feed(text[start:cut])
            start = cut
    return events + parser.close()


def progress_of(text, cuts=None):
    progress = TrainingProgress()
    for event in events_of(text, cuts):
        progress = progress.apply(event)
    return progress


def stand_in_output(line, steps, total, delay=0.0):
    """The stand-in's stdout and stderr as one stream, as the runner gets them."""
    stream = io.StringIO()
    demo_progress.run(line, steps, total, delay, out=stream, err=stream)
    return stream.getvalue()


def through_ray(text, pid=4242):
    """As Ray's driver prints a task's output: every line (a redraw without a newline
    too, when it is read before the next) with the task's prefix, in colour."""
    pieces = []
    for line in text.split("\n"):
        for part in line.replace("\r", "\n\r").split("\n"):
            if part:
                pieces.append(f"{CYAN}(skyrl_entrypoint pid={pid}){RESET} {part}\n")
    return "".join(pieces)


# -- one piece at a time -----------------------------------------------------------------------
@pytest.mark.parametrize("n,total,elapsed,want", [
    (84, 200, 3696, (84, 200, 3696.0, 5104.0, 44.0)),
    (5, 20, 1.2, (5, 20, 1.0, 3.0, 0.24)),
    (0, 200, 0, (0, 200, 0.0, None, None)),
    (84, 200, 3696 * 30, (84, 200, 110880.0, 153120.0, 1320.0)),
    (200, 200, 8800, (200, 200, 8800.0, 0.0, 44.0)),
])
def test_real_tqdm_bars(n, total, elapsed, want):
    bar = parse_bar(meter(n, total, elapsed))
    assert bar is not None
    got = (bar.step, bar.total, bar.elapsed_seconds, bar.remaining_seconds, bar.seconds_per_step)
    assert got[:4] == want[:4]
    assert (got[4] is None) == (want[4] is None) and (want[4] is None or abs(got[4] - want[4]) < 0.01)


def test_ascii_bars_no_total_and_postfix():
    assert parse_bar(meter(84, 200, 3696, ascii=True)).step == 84
    bar = parse_bar(meter(84, None, 60))
    assert (bar.step, bar.total, bar.remaining_seconds) == (84, None, None)
    assert abs(bar.seconds_per_step - 60 / 84) < 0.01
    assert parse_bar(meter(3, 10, 9, postfix="loss=0.1")).seconds_per_step == 3.0


@pytest.mark.parametrize("text", [
    meter(84, 200, 3696).replace(BAR, "Evaluation Progress"),
    meter(84, 200, 3696).replace(BAR, "Processed prompts"),
    "Training Batches Processed:  42%|####      | 84/20 [1:01:36<1:25:04, 44.00s/it]",  # n > total
    "Training Batches Processed:  10%|####      | 84/200 [1:01:36<1:25:04, 44.00s/it]",  # wrong %
    "Training Batches Processed:  42%|####      | 84/200 [1:61:36<1:25:04, 44.00s/it]",  # no clock
    "Training Batches Processed:  42%|####      | 84/200 [1:01:36<soon, 44.00s/it]",
    "Training Batches Processed:  42%|####      | 84/200 [1:01:36<1:25:0",  # cut off
    "Training Batches Processed: 84/200",
    "the Training Batches Processed metric",
])
def test_what_is_not_a_training_bar(text):
    assert parse_bar(text) is None


def test_clock_and_rate():
    assert clock_seconds("00:00") == 0 and clock_seconds("1:25:04") == 5104
    assert clock_seconds("159:06:22") == 159 * 3600 + 6 * 60 + 22
    assert clock_seconds("1:75:00") is None and clock_seconds("?") is None
    assert seconds_per_step(" 44.00s/it") == 44.0 and seconds_per_step("2.00it/s") == 0.5
    assert seconds_per_step("?it/s") is None and seconds_per_step("1.2kit/s") is None
    assert seconds_per_step("0.00it/s") is None


def test_ray_prefix_and_step_header():
    assert split_ray_prefix("(skyrl_entrypoint pid=2786) Step 84: ") == ("skyrl_entrypoint pid=2786", "Step 84: ")
    assert split_ray_prefix("(PolicyWorker pid=7, ip=10.0.0.5)  'a': 1,")[0] == "PolicyWorker pid=7, ip=10.0.0.5"
    assert split_ray_prefix("(pid=7) x") == ("pid=7", "x")
    assert split_ray_prefix("(raylet) x") == (None, "(raylet) x")
    assert step_header("2026-12-03 10:00:00.123 | INFO     | skyrl_train.utils.tracking:log:107 - Step 84: ") == (84, None)
    assert step_header("Step 3: {'a': 1}") == (3, "{'a': 1}")
    assert step_header("Step 3: loading the model") is None
    assert step_header("MyStep 3: ") is None and step_header("nothing here") is None


def test_headline_metrics_prefer_the_mean_raw_reward_and_the_policy_loss():
    values = {"reward/avg_pass_at_4": 0.9, "reward/avg_raw_reward": 0.41, "loss/avg_final_rewards": 0.4,
              "policy/policy_loss": 0.12, "critic/critic_loss": 3.0, "eval/all/avg_score": 0.3}
    assert headline_keys(values) == {"reward": "reward/avg_raw_reward", "loss": "policy/policy_loss",
                                     "eval": "eval/all/avg_score"}
    assert headline_keys({"reward/domain/math/avg_raw_reward": 0.2, "reward/std_reward": 0.1,
                          "reward/min_raw_reward": 0.0}) == {"reward": "reward/domain/math/avg_raw_reward"}
    assert headline_keys({"reward/avg_pass_at_4": 0.9, "reward/mean_positive_reward": 0.5,
                          "eval/all/mean_reward": 0.3, "timing/step": 4.0}) == {}


def test_brackets_in_strings_do_not_count():
    assert bracket_depth("{'a{': '}', \"b\\\"}\": [1, (2", 0) == 3
    assert bracket_depth("'open", 0) is None and bracket_depth("}", 0) is None
    assert bracket_depth("[" * 40, 0) is None


# -- the whole stream ----------------------------------------------------------------------------
@pytest.mark.parametrize("line", sorted(demo_progress.LINES))
def test_both_skyrl_lines_as_printed(line):
    text = stand_in_output(line, steps=5, total=8)
    assert "\r" in text and "Step 5: \n{" in text
    progress = progress_of(text)
    assert (progress.step, progress.total, progress.metrics_step) == (5, 8, 5)
    assert progress.metrics == {"reward": demo_progress.reward_at(5, 8), "loss": demo_progress.loss_at(5)}
    assert progress.metric_keys == {"reward": "reward/avg_raw_reward", "loss": "policy/policy_loss"}
    assert progress.rewards == tuple((s, demo_progress.reward_at(s, 8)) for s in range(1, 6))
    assert progress.eta_seconds is not None and progress.elapsed_seconds is not None
    metrics = [e for e in events_of(text) if isinstance(e, StepMetrics)]
    assert len(metrics) == (10 if line == "skyrl-train" else 5)  # skyrl-train: timings apart
    assert all(isinstance(e, (Bar, StepMetrics)) for e in events_of(text))


@pytest.mark.parametrize("line", sorted(demo_progress.LINES))
def test_through_rays_driver_with_prefixes_and_colour(line):
    text = through_ray(stand_in_output(line, steps=4, total=4))
    assert text.count("(skyrl_entrypoint pid=4242)") > 40
    progress = progress_of(text)
    assert (progress.step, progress.total, progress.metrics_step) == (4, 4, 4)
    assert progress.metrics["reward"] == demo_progress.reward_at(4, 4)


def test_chunks_cut_anywhere_give_the_same_progress():
    text = through_ray(stand_in_output("skyrl-train", steps=2, total=3)) + stand_in_output("skyrl", 3, 3)
    whole = progress_of(text)
    assert whole.step == 3 and whole.metrics_step == 3 and len(whole.rewards) == 3
    for size in (1, 2, 3, 7, 64, 1000):
        assert progress_of(text, range(size, len(text), size)) == whole, size
    rng = random.Random(7)
    for _ in range(30):
        assert progress_of(text, rng.sample(range(1, len(text)), 25)) == whole


def test_the_latest_redraw_wins_and_a_partial_redraw_counts_once_complete():
    parser = ProgressParser()
    bars = "".join("\r" + meter(n, 10, n * 3.0) for n in range(4))
    assert [e.step for e in parser.feed(bars)] == [0, 1, 2, 3]  # the last one: complete at "]"
    assert parser.feed("\r" + meter(4, 10, 12.0)[:30]) == []
    assert [e.step for e in parser.feed(meter(4, 10, 12.0)[30:])] == [4]


def test_a_bar_then_a_log_line_on_the_same_line():
    body = pprint.pformat({"reward/avg_raw_reward": "0.5000", "policy/policy_loss": "0.2000", "x/y": 1, "x/z": 2,
                           "generate/avg_num_tokens": "512.0000", "policy/policy_entropy": "1.0000"})
    text = "\r" + meter(6, 10, 60) + "2026-12-03 10:00:00.123 | INFO | x:log:1 - Step 7: \n" + body + "\n"
    progress = progress_of(text)
    assert (progress.step, progress.metrics_step, progress.metrics["reward"]) == (6, 7, 0.5)


def test_another_processs_lines_in_between_do_not_break_a_dict():
    body = pprint.pformat({f"metric/number_{i}": f"{i}.0000" for i in range(8)} | {"reward/avg_raw_reward": "0.3000"})
    lines = body.splitlines()
    text = "(skyrl_entrypoint pid=1) Step 2: \n"
    for i, line in enumerate(lines):
        text += f"(skyrl_entrypoint pid=1) {line}\n"
        if i == 2:
            text += "(PolicyWorker pid=9) {'noise': 1,\n(vllm pid=3) INFO 12-03 loading\n"
    assert progress_of(text).metrics == {"reward": 0.3}


def test_the_tracker_dict_with_skyrl_trains_separate_timing_dict_keeps_the_reward():
    text = ("Step 3: \n{'policy/policy_loss': '0.2000',\n 'reward/avg_raw_reward': '0.6000'}\n"
            "Step 3: \n{'timing/generate': '1.0000',\n 'timing/step': '2.0000'}\n")
    progress = progress_of(text)
    assert progress.metrics == {"reward": 0.6, "loss": 0.2} and progress.rewards == ((3, 0.6),)


@pytest.mark.parametrize("text", [
    "",
    "Loading checkpoint shards: 100%|##########| 2/2 [00:00<00:00,  8.66it/s]\n",
    "\r" + meter(3, 9, 3).replace(BAR, "Evaluation Progress") + "\n",
    "Step 3: loading the model\n{'reward/avg_raw_reward': '0.5000'}\n",
    "2026-12-03 | INFO | trainer:train:402 - {'policy_loss': 0.1, 'reward': 0.5}\n",  # status dict
    "Step 4: \nsomething else\n {'reward/avg_raw_reward': '0.5000'}\n",  # not a dict after Step
    "Step 4: \n{'reward/avg_raw_reward': __import__('os').getpid()}\n",  # never evaluated
    "Step 4: \n{'reward/avg_raw_reward': '0.5000',\nTraceback (most recent call last):\n 'x': 1}\n",
    "Step 4: \n['reward/avg_raw_reward', 0.5]\n",
    "Step 4: \n{'reward/avg_raw_reward': 'high', 'flag': True, 'nan': float('nan')}\n",
    "Step 4: \n{'reward/avg_raw_reward': '0.5000',\n",  # never closed
    "\x00\x01\x02 binary \x1b[31m garbage \x1b]0;title\x07 " * 50 + "\n",
])
def test_unknown_or_broken_output_gives_no_progress(text):
    assert not progress_of(text).known
    assert not progress_of(text, range(3, len(text), 3)).known


def test_values_are_numbers_only_and_not_a_number_is_left_out():
    text = "Step 1: {'reward/avg_raw_reward': 'nan', 'policy/policy_loss': 0.25, 'reward/mean': 'inf', 'ok': True}\n"
    progress = progress_of(text)
    assert progress.metrics == {"loss": 0.25} and progress.rewards == ()


def test_a_dict_too_long_is_dropped_and_the_next_step_still_reads():
    huge = "Step 1: \n{" + "".join(f" 'k{i}': {i},\n" for i in range(MAX_DICT_LINES + 5)) + " 'z': 0}\n"
    text = huge + "Step 2: \n{'reward/avg_raw_reward': '0.7000'}\n"
    progress = progress_of(text)
    assert progress.metrics_step == 2 and progress.metrics == {"reward": 0.7}


def test_an_overlong_line_without_a_newline_is_skipped():
    parser = ProgressParser()
    assert parser.feed("x" * 70000) == [] and parser.feed("y" * 70000 + meter(1, 2, 1) + "\n") == []
    assert [e.step for e in parser.feed("\r" + meter(2, 2, 2) + "\n")] == [2]


def test_reward_history_is_bounded_and_in_step_order():
    progress = TrainingProgress()
    for step in list(range(1, REWARD_HISTORY + 20)) + [5]:
        progress = progress.apply(StepMetrics(step, {"reward/avg_raw_reward": step / 100}))
    assert len(progress.rewards) == REWARD_HISTORY
    assert [s for s, _ in progress.rewards] == sorted(s for s, _ in progress.rewards)
    assert progress.rewards[-1][0] == REWARD_HISTORY + 19


def test_to_dict_is_plain_json():
    import json

    progress = progress_of(stand_in_output("skyrl", steps=2, total=4))
    data = json.loads(json.dumps(progress.to_dict()))
    assert data["step"] == 2 and data["total"] == 4 and data["metrics"]["reward"] == demo_progress.reward_at(2, 4)
    assert data["rewards"] == [[1, demo_progress.reward_at(1, 4)], [2, demo_progress.reward_at(2, 4)]]
