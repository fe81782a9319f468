"""The default window: the fewest T within one chip, then the fewest N, meeting a model-level target.

The search logic is checked against brute force on synthetic fidelity curves; the real thing on a
shipped strong-gate checkpoint through the CLIs (the choice printed, saved, reported, reused, and
an unmeetable target refused with the best reachable)."""

from __future__ import annotations

import itertools
import json

import pytest

from ember_neuro.deploy import faithful as F
from ember_neuro.mappers.gate import MAX_LEVELS

from ..helpers import SHIPPED, run_main


def curve(levels_needed: int, noise: dict | None = None):
    """A fidelity curve that meets the target from N*T >= levels_needed (top-1 rises with N*T)."""
    calls = []

    def score(t: int, n: int) -> F.Score:
        calls.append((t, n))
        ok = t * n >= levels_needed
        return F.Score(t, n, 0.999 if ok else 0.99, 0.0)

    return score, calls


def brute_force(levels_needed: int, n_cap: int) -> tuple[int, int]:
    ts, ns = F.powers_of_two(4096), F.powers_of_two(n_cap)
    ok = [(t, n) for t, n in itertools.product(ts, ns) if t * n <= MAX_LEVELS and t * n >= levels_needed]
    t = min(t for t, _ in ok)
    return t, min(n for tt, n in ok if tt == t)


@pytest.mark.parametrize("needed,cap", [(1, 1024), (64, 113), (256, 113), (256, 1024), (300, 64), (4096, 1)])
def test_search_finds_the_fewest_t_then_the_fewest_n_in_few_evaluations(needed, cap) -> None:
    score, calls = curve(needed)
    best, tried = F.search(score, lambda t: cap, F.ModelTarget())
    assert (best.timesteps, best.neurons_per_gate) == brute_force(needed, cap)
    assert len(calls) == len(set(calls)) == len(tried) <= 14  # each window scored once, a few of them


def test_pinned_t_chooses_n_and_pinned_n_chooses_t() -> None:
    score, _ = curve(256)
    best, _ = F.search(score, lambda t: 1024, F.ModelTarget(), timesteps=8)
    assert (best.timesteps, best.neurons_per_gate) == (8, 32)
    best, _ = F.search(score, lambda t: 1024, F.ModelTarget(), neurons_per_gate=4)
    assert (best.timesteps, best.neurons_per_gate) == (64, 4)


def test_a_pinned_n_beyond_the_chip_is_refused() -> None:
    score, calls = curve(1)
    with pytest.raises(F.TargetUnreachable, match="-N 2048 does not fit one Loihi 2 chip"):
        F.search(score, lambda t: 1024, F.ModelTarget(), neurons_per_gate=2048)
    assert not calls


def test_an_unreachable_target_names_the_best_reachable() -> None:
    score, _ = curve(10**9)
    with pytest.raises(F.TargetUnreachable, match=r"best reachable is top-1 99\.000%.*T=64, N=1024"):
        F.search(score, lambda t: 1024, F.ModelTarget())


def test_target_percentages_are_checked() -> None:
    with pytest.raises(ValueError, match="--min-top1"):
        F.ModelTarget(top1=1.5)
    with pytest.raises(ValueError, match="--max-rel-delta"):
        F.ModelTarget(rel_delta=-0.1)


def test_a_damaged_cache_entry_is_searched_again(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EMBER_NEURO_WINDOWS", str(tmp_path))
    choice = F.WindowChoice(8, 32, "auto", {"top1": 0.998, "rel_delta": 0.001},
                            {"top1": 0.999, "rel_delta": 0.0}, 1000, {})
    F._write_cache("k", choice)
    assert F._read_cache("k").neurons_per_gate == 32
    for junk in ("{not json", json.dumps({**json.loads((tmp_path / "k.json").read_text()), "timesteps": "8"}),
                 json.dumps({**json.loads((tmp_path / "k.json").read_text()), "neurons_per_gate": 10**6})):
        (tmp_path / "k.json").write_text(junk)
        assert F._read_cache("k") is None


CKPT = str(SHIPPED / "lif-learnable-strong.pt")


@pytest.fixture(scope="module")
def chosen(tmp_path_factory) -> dict:
    """`map` with no window flags (the design card's command), its mapping saved."""
    out = tmp_path_factory.mktemp("default-map") / "m"
    r = run_main("ember_neuro.map", CKPT, "--target", "emulator", "--grid-only", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    return {"summary": json.loads(r.stdout), "stderr": r.stderr, "out": out}


def test_the_bare_command_chooses_a_faithful_window_and_says_why(chosen) -> None:
    s, choice = chosen["summary"], chosen["summary"]["window_choice"]
    assert (s["timesteps"], s["neurons_per_gate"], s["levels"]) == \
        (choice["timesteps"], choice["neurons_per_gate"], "auto")
    assert choice["measured"]["top1"] >= 0.998 and abs(choice["measured"]["rel_delta"]) <= 0.001
    assert choice["neurons"] <= 1_048_576
    # the fewest: every smaller window the search scored missed the target
    for tried in choice["tried"]:
        smaller = tried["timesteps"] < s["timesteps"] or (
            tried["timesteps"] == s["timesteps"] and tried["neurons_per_gate"] < s["neurons_per_gate"])
        if smaller:
            assert tried["top1"] < 0.998 or abs(tried["rel_delta"]) > 0.001
    assert s["neurons_per_gate"] == 1 or any(t["neurons_per_gate"] < s["neurons_per_gate"]
                                           for t in choice["tried"])
    line = [ln for ln in chosen["stderr"].splitlines() if ln.startswith("window T=")]
    assert line and "the fewest timesteps" in line[0] and "top-1 >= 99.80%" in line[0]


def test_the_choice_is_saved_and_reused(chosen) -> None:
    """run --mapped uses the saved choice without a search; a second bare command reuses the cache."""
    from ember_neuro.mappers import load_mapped

    net = load_mapped(chosen["out"])
    assert net.options["window_choice"]["timesteps"] == net.options["timesteps"]
    r = run_main("ember_neuro.map", CKPT, "--target", "emulator", "--grid-only", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["window_choice"]["cached"] is True
    assert "window search" not in r.stderr


def test_the_chosen_window_is_faithful_on_other_text(chosen) -> None:
    """The choice holds on validation batches the search never saw (run --eval's seed), at the bar
    less one calibration standard error of the 4,096 tokens scored."""
    r = run_main("ember_neuro.run", CKPT, "--backend", "emulator", "--eval", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert (res["timesteps"], res["neurons_per_gate"]) == (chosen["summary"]["timesteps"],
                                                           chosen["summary"]["neurons_per_gate"])
    assert res["top1_agreement"] >= 0.998 - 0.0007 and abs(res["rel_delta"]) <= 0.001


def test_only_t_pinned_chooses_n(chosen) -> None:
    r = run_main("ember_neuro.run", CKPT, "--backend", "emulator", "--eval", "--batches", "1", "-T", "8",
                "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["timesteps"] == 8 and res["window_choice"]["pinned"]["timesteps"] == 8
    assert res["window_choice"]["measured"]["top1"] >= 0.998


def test_an_unmeetable_target_is_one_line_naming_the_best(chosen) -> None:
    r = run_main("ember_neuro.map", CKPT, "--target", "emulator", "--grid-only", "-T", "1",
                "--min-top1", "100", "--max-rel-delta", "0")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("error: the target top-1 >= 100.00%")
    assert "best reachable is top-1" in lines[-1]


@pytest.mark.parametrize("args,says", [
    (("-T", "64", "-N", "2048"), "out of range"),
    (("-T", "8", "-N", "4", "--min-top1", "99"), "drop it, or drop -T/-N"),
    (("--min-top1", "120"), "--min-top1 must be a percentage"),
    (("--max-error", "0.01", "--min-top1", "99"), "give one kind of target"),
])
def test_bad_window_requests_are_one_line(args, says) -> None:
    r = run_main("ember_neuro.map", CKPT, "--target", "emulator", "--grid-only", *args)
    assert r.returncode == 2 and says in r.stderr and r.stderr.count("error:") == 1, r.stderr
