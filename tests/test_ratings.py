"""Ratings: recover known strengths from simulated votes; survive empty and one-sided logs."""

from __future__ import annotations

import numpy as np
import pytest

from restorelab.listening.ratings import bradley_terry, leaderboard

TRUE = {"a": 1.0, "b": 0.4, "c": 0.0, "d": -0.6}


def simulate(n_votes: int, seed: int = 0, tie_rate: float = 0.1, left_bias: float = 0.0) -> list[dict]:
    rng = np.random.default_rng(seed)
    names = list(TRUE)
    votes = []
    for _ in range(n_votes):
        i, j = rng.choice(len(names), 2, replace=False)
        left, right = names[i], names[j]
        if rng.random() < tie_rate:
            choice = "tie"
        else:
            p_left = 1 / (1 + np.exp(-(TRUE[left] - TRUE[right] + left_bias)))
            choice = "left" if rng.random() < p_left else "right"
        votes.append({"restorer_left": left, "restorer_right": right, "choice": choice})
    return votes


def test_fit_recovers_order_and_intervals_cover_the_truth():
    """Votes drawn from the Bradley-Terry model itself: order and 95 % intervals must hold."""
    board = leaderboard(simulate(1500, tie_rate=0.0), n_bootstrap=300)
    assert [row["name"] for row in board.rows] == ["a", "b", "c", "d"]
    truth = np.array(list(TRUE.values()))
    truth = truth - truth.mean()
    for row in board.rows:
        true = truth[list(TRUE).index(row["name"])]
        assert row["ci_low"] <= true <= row["ci_high"], row
        assert row["rank"] is not None
    assert board.counts.sum() == 2 * 1500
    assert 0.4 < board.left_win_share < 0.6 and board.left_bias_p > 0.01


def test_ties_keep_the_order_and_pull_strengths_together():
    plain = leaderboard(simulate(1500, seed=1, tie_rate=0.0), n_bootstrap=20)
    tied = leaderboard(simulate(1500, seed=1, tie_rate=0.3), n_bootstrap=20)
    assert [r["name"] for r in tied.rows] == ["a", "b", "c", "d"]
    spread = lambda board: board.rows[0]["strength"] - board.rows[-1]["strength"]  # noqa: E731
    assert spread(tied) < spread(plain)


def test_position_bias_is_detected():
    board = leaderboard(simulate(1500, seed=3, left_bias=0.8), n_bootstrap=50)
    assert board.left_win_share > 0.6 and board.left_bias_p < 1e-6


def test_win_rates_and_sign_tests():
    votes = [{"restorer_left": "x", "restorer_right": "y", "choice": "left"}] * 12
    votes += [{"restorer_left": "y", "restorer_right": "x", "choice": "left"}] * 3
    votes += [{"restorer_left": "x", "restorer_right": "y", "choice": "both_bad"}] * 2
    board = leaderboard(votes, min_votes=1, n_bootstrap=50)
    ix, iy = board.names.index("x"), board.names.index("y")
    assert board.win_rate[ix, iy] == pytest.approx(12 / 15)
    assert board.counts[ix, iy] == 17
    (test,) = board.pair_tests
    assert (test["a_wins"], test["b_wins"], test["ties"]) == (12, 3, 2)
    assert test["sign_test_p"] == pytest.approx(0.03515625)  # two-sided binomial, 12 of 15


def test_empty_and_one_sided_logs():
    empty = leaderboard([])
    assert empty.rows == [] and "No votes" in empty.message
    one_sided = [{"restorer_left": "x", "restorer_right": "y", "choice": "left"}] * 5
    board = leaderboard(one_sided, n_bootstrap=50)
    assert all(np.isfinite(row["strength"]) for row in board.rows)
    assert board.rows[0]["name"] == "x"
    assert all(row["rank"] is None for row in board.rows) and "10 votes" in board.message


def test_bradley_terry_two_items_closed_form():
    """Two items, 30 wins to 10, no prior: p_a/p_b = 3, log-strengths +-ln(3)/2."""
    outcomes = np.array([[0, 1, 1.0]] * 30 + [[0, 1, 0.0]] * 10)
    strengths = bradley_terry(outcomes, 2, prior_games=0.0)
    assert strengths[0] - strengths[1] == pytest.approx(np.log(3), abs=1e-6)


def test_a_merged_candidate_passes_the_vote_to_each_member_with_shared_weight():
    """'a=b' beat c 20 times in 30: a and b each get that record against c (so equal strengths,
    above c's), and every trial still counts once for each restorer in it."""
    votes = [{"restorer_left": "a=b", "restorer_right": "c", "choice": "left"}] * 20
    votes += [{"restorer_left": "c", "restorer_right": "a=b", "choice": "left"}] * 10
    board = leaderboard(votes, min_votes=1, n_bootstrap=20)
    strengths = {row["name"]: row["strength"] for row in board.rows}
    assert strengths["a"] == pytest.approx(strengths["b"], abs=1e-9) and strengths["a"] > strengths["c"]
    assert {row["name"]: row["votes"] for row in board.rows} == {"a": 30, "b": 30, "c": 30}
    ia, ic = board.names.index("a"), board.names.index("c")
    assert board.counts[ia, ic] == 30 and board.win_rate[ia, ic] == pytest.approx(20 / 30)
    assert board.left_win_share == pytest.approx(30 / 30)  # every decisive vote went to the left side


def test_intervals_resample_listeners_not_only_votes():
    """Ten listeners who disagree (five prefer a nine times in ten, five prefer b): the votes
    alone look like a coin flip measured 500 times, but the listeners are only ten. Resampling
    listeners must give a much wider interval than resampling votes."""
    rng = np.random.default_rng(11)
    votes = []
    for listener in range(10):
        p_a = 0.9 if listener < 5 else 0.1
        for k in range(50):
            choice = "left" if rng.random() < p_a else "right"
            votes.append({"restorer_left": "a", "restorer_right": "b", "choice": choice,
                          "session_id": f"l{listener}", "trial_id": f"l{listener}-{k}"})
    width = lambda board: board.rows[0]["ci_high"] - board.rows[0]["ci_low"]  # noqa: E731
    by_listener = leaderboard(votes, n_bootstrap=300)
    by_vote = leaderboard(votes, n_bootstrap=300, units=("trial_id",))
    assert width(by_listener) > 2.5 * width(by_vote)


def test_bradley_terry_with_ties_two_items_closed_form():
    """20 wins, 10 losses and 10 ties, ties counting half: a scores 25 of 40, b 15, so the
    maximum-likelihood ratio p_a / p_b is 25 / 15 and the log-strengths differ by ln(25/15)."""
    outcomes = np.array([[0, 1, 1.0]] * 20 + [[0, 1, 0.0]] * 10 + [[1, 0, 0.5]] * 10)
    strengths = bradley_terry(outcomes, 2, prior_games=0.0)
    assert strengths[0] - strengths[1] == pytest.approx(np.log(25 / 15), abs=1e-7)
    assert strengths.sum() == pytest.approx(0.0, abs=1e-12)


def test_bradley_terry_is_the_maximum_likelihood_fit():
    """Four items with ties, fitted independently by scipy.optimize on the Bradley-Terry
    log-likelihood (a tie is half a win for each side): the MM fit must agree."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(5)
    names = list(TRUE)
    rows = []
    for _ in range(600):
        i, j = rng.choice(4, 2, replace=False)
        p = 1 / (1 + np.exp(TRUE[names[j]] - TRUE[names[i]]))
        rows.append([i, j, 0.5 if rng.random() < 0.15 else float(rng.random() < p)])
    outcomes = np.array(rows)

    def negative_log_likelihood(free):
        beta = np.append(free, -free.sum())  # mean zero
        i, j, s = outcomes[:, 0].astype(int), outcomes[:, 1].astype(int), outcomes[:, 2]
        d = beta[i] - beta[j]
        return -np.sum(s * -np.logaddexp(0, -d) + (1 - s) * -np.logaddexp(0, d))

    fitted = minimize(negative_log_likelihood, np.zeros(3), method="BFGS", options={"gtol": 1e-10}).x
    expected = np.append(fitted, -fitted.sum())
    assert bradley_terry(outcomes, 4, prior_games=0.0) == pytest.approx(expected, abs=1e-5)
    # The default weak prior moves them only a little with 600 votes.
    assert bradley_terry(outcomes, 4) == pytest.approx(expected, abs=0.02)


@pytest.mark.parametrize("bias, side", [(0.8, "left"), (-0.8, "right")])
def test_position_bias_is_detected_either_way(bias, side):
    """The position-bias test is two-sided: a bias to the right is found as surely as one to the left."""
    board = leaderboard(simulate(1500, seed=3, left_bias=bias), n_bootstrap=20)
    assert (board.left_win_share > 0.6) if side == "left" else (board.left_win_share < 0.4)
    assert board.left_bias_p < 1e-6


def test_position_bias_p_value_is_the_two_sided_binomial():
    """60 left wins of 100 decisive votes: two-sided binomial p = 0.0569 (one-sided it would be 0.028)."""
    votes = [{"restorer_left": "x", "restorer_right": "y", "choice": "left"}] * 60
    votes += [{"restorer_left": "x", "restorer_right": "y", "choice": "right"}] * 40
    votes += [{"restorer_left": "x", "restorer_right": "y", "choice": "tie"}] * 7  # ties are not decisive
    board = leaderboard(votes, n_bootstrap=10)
    assert board.left_win_share == pytest.approx(0.6)
    assert board.left_bias_p == pytest.approx(0.056888, abs=1e-5)


@pytest.mark.slow
def test_interval_coverage_over_many_seeds():
    """Votes from the model itself, one vote per session: the 95 % intervals cover the (mean-zero)
    truth about 95 % of the time, between 88 % and 100 % over 40 seeds and 4 items (160 intervals,
    binomial sd 1.7 points; 95 % over 400 intervals when measured). No ties: ties drawn at random,
    whatever the strengths, are not the Bradley-Terry model, and pull the fit towards zero."""
    truth = np.array(list(TRUE.values()))
    truth -= truth.mean()
    covered = []
    for seed in range(40):
        votes = simulate(300, seed=1000 + seed, tie_rate=0.0)
        for k, vote in enumerate(votes):
            vote["session_id"] = f"s{k}"
        board = leaderboard(votes, n_bootstrap=200, seed=seed)
        covered += [row["ci_low"] <= truth[list(TRUE).index(row["name"])] <= row["ci_high"] for row in board.rows]
    assert 0.88 <= np.mean(covered) <= 1.0, np.mean(covered)


def test_the_prior_is_a_half_win_each_way_in_every_pair():
    """The weak prior adds ``prior_games / (n - 1)`` virtual games to every pair, each a tie. So
    with the prior the fit must match a maximum-likelihood fit (scipy) of the data plus those
    ties; with two items it is the closed form ln((30 + 0.5) / (10 + 0.5)). Outcome weights (the
    fourth column) and bootstrap multiplicities scale each outcome, and small weights keep the
    MM denominators below one."""
    from scipy.optimize import minimize

    two = np.array([[0, 1, 1.0]] * 30 + [[0, 1, 0.0]] * 10)
    assert bradley_terry(two, 2)[0] * 2 == pytest.approx(np.log(30.5 / 10.5), abs=1e-7)
    rows = np.array([[0, 1, 1.0, 0.25], [0, 1, 0.5, 0.25], [1, 2, 1.0, 0.5], [2, 0, 0.0, 0.1], [2, 1, 0.5, 0.3]])
    multiplicity = np.array([2.0, 1.0, 3.0, 1.0, 0.0])
    for prior in (1.0, 2.0):
        pairs = [(i, j) for i in range(3) for j in range(i + 1, 3)]
        virtual = np.array([[i, j, 0.5, prior / 2] for i, j in pairs])
        data = np.vstack([rows * [1, 1, 1, 0] + np.c_[np.zeros((5, 3)), rows[:, 3] * multiplicity], virtual])

        def negative_log_likelihood(free, data=data):
            beta = np.append(free, -free.sum())
            i, j, s, w = data[:, 0].astype(int), data[:, 1].astype(int), data[:, 2], data[:, 3]
            d = beta[i] - beta[j]
            return -np.sum(w * (s * -np.logaddexp(0, -d) + (1 - s) * -np.logaddexp(0, d)))

        fitted = minimize(negative_log_likelihood, np.zeros(2), method="BFGS", options={"gtol": 1e-12}).x
        expected = np.append(fitted, -fitted.sum())
        assert bradley_terry(rows, 3, prior_games=prior, weights=multiplicity) == pytest.approx(expected, abs=1e-5)


def test_ties_and_both_bad_count_half_and_merged_votes_share_their_weight():
    from restorelab.listening.ratings import _expand

    votes = [{"restorer_left": "a=b", "restorer_right": "c", "choice": "tie"},
             {"restorer_left": "c", "restorer_right": "a", "choice": "both_bad"},
             {"restorer_left": "a", "restorer_right": "c", "choice": "right"}]
    outcomes, owner = _expand(votes, {"a": 0, "b": 1, "c": 2})
    assert outcomes.tolist() == [[0, 2, 0.5, 0.5], [1, 2, 0.5, 0.5], [2, 0, 0.5, 1.0], [0, 2, 0.0, 1.0]]
    assert owner.tolist() == [0, 0, 1, 2]
    level = leaderboard([{"restorer_left": "x", "restorer_right": "y", "choice": choice}
                         for choice in ("tie", "both_bad") * 10], n_bootstrap=10)
    assert [row["strength"] for row in level.rows] == pytest.approx([0.0, 0.0], abs=1e-9)


def test_a_small_log_gives_the_table_worked_out_by_hand():
    """x and y: x won 12, y won 3, 2 'both bad'; y and z: one tie; x and z: x won once; and a check
    trial, which must count nowhere. Ranks are consecutive from 1 among restorers with
    ``min_votes`` votes (z has 2: no rank at 3, a rank at 2)."""
    votes = [{"restorer_left": "x", "restorer_right": "y", "choice": "left"}] * 12
    votes += [{"restorer_left": "y", "restorer_right": "x", "choice": "left"}] * 3
    votes += [{"restorer_left": "x", "restorer_right": "y", "choice": "both_bad"}] * 2
    votes += [{"restorer_left": "y", "restorer_right": "z", "choice": "tie"},
              {"restorer_left": "z", "restorer_right": "x", "choice": "right"},
              {"restorer_left": "z", "restorer_right": "x", "choice": "left", "check": "anchor"}]
    board = leaderboard(votes, min_votes=3, n_bootstrap=200)
    assert board.votes == 19 and board.counts.sum() == 2 * 19
    assert [(row["name"], row["votes"], row["rank"]) for row in board.rows] == [("x", 18, 1), ("y", 18, 2),
                                                                               ("z", 2, None)]
    assert [row["rank"] for row in leaderboard(votes, min_votes=2, n_bootstrap=10).rows] == [1, 2, 3]
    tests = {(t["a"], t["b"]): t for t in board.pair_tests}
    assert tests[("x", "y")] == {"a": "x", "b": "y", "votes": 17, "a_wins": 12, "b_wins": 3, "ties": 2,
                                 "sign_test_p": pytest.approx(0.03515625)}
    assert tests[("x", "z")]["sign_test_p"] == 1.0 and tests[("x", "z")]["a_wins"] == 1
    assert np.isnan(tests[("y", "z")]["sign_test_p"]) and tests[("y", "z")]["ties"] == 1
    ix, iy, iz = (board.names.index(n) for n in "xyz")
    assert np.isnan(board.win_rate[iy, iz]) and board.win_rate[ix, iz] == 1.0 and board.win_rate[iz, ix] == 0.0
    assert board.win_rate[iy, ix] == pytest.approx(3 / 15)
    # 12 + 3 of the 16 decisive votes went to the left side (x's win over z came from the right).
    assert board.left_win_share == pytest.approx(15 / 16)
    # The interval is the 95 % percentile interval of the bootstrap, which is reproducible.
    low, high = np.percentile(board.bootstrap, [2.5, 97.5], axis=0)
    assert [row["ci_low"] for row in board.rows] == pytest.approx([low[ix], low[iy], low[iz]])
    assert [row["ci_high"] for row in board.rows] == pytest.approx([high[ix], high[iy], high[iz]])
    again = leaderboard(votes, min_votes=3, n_bootstrap=200)
    assert np.array_equal(again.bootstrap, board.bootstrap)


def test_bootstrap_weights_resample_whole_units():
    """Crossed units (listeners and clips): every vote of one listener-clip cell gets the same
    weight, the product of how often its listener and its clip were drawn, so over a balanced
    design the weights sum to votes-per-cell x listeners x clips. One unit (sessions): a drawn
    session contributes as many votes as it has, so equal sessions always sum to all the votes."""
    from restorelab.listening.ratings import _bootstrap_weights

    votes = [{"listener_id": f"l{i}", "clip_id": f"c{j}", "session_id": f"l{i}"}
             for i in range(5) for j in range(4) for _ in range(3)]
    rng = np.random.default_rng(0)
    for _ in range(20):
        weights = _bootstrap_weights(votes, ("listener_id", "clip_id"), rng)
        assert weights.sum() == 3 * 5 * 4 and np.all(weights == np.round(weights))
        cells = {}
        for vote, weight in zip(votes, weights):
            cells.setdefault((vote["listener_id"], vote["clip_id"]), set()).add(weight)
        assert all(len(values) == 1 for values in cells.values())
        by_listener = {l: sum(w for v, w in zip(votes, weights) if v["listener_id"] == l) for l in ("l0", "l1")}
        by_clip0 = {l: next(iter(cells[(l, "c0")])) for l in ("l0", "l1")}
        if by_clip0["l0"] and by_clip0["l1"]:  # a listener's weight is the same share in every clip
            assert by_listener["l0"] / by_listener["l1"] == pytest.approx(by_clip0["l0"] / by_clip0["l1"])
        one = _bootstrap_weights(votes, ("session_id",), rng)
        assert one.sum() == len(votes) and np.all(one == np.round(one))
    drawn = [_bootstrap_weights(votes, ("listener_id", "clip_id"), np.random.default_rng(s)) for s in range(300)]
    assert np.mean(drawn) == pytest.approx(1.0, abs=0.05)  # each vote is drawn once on average
    assert np.mean([np.all(w > 0) for w in drawn]) < 0.5  # and some units are left out
