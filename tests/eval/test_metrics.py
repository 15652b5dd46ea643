"""Metric functions against confusion matrices computed by hand."""

from __future__ import annotations

import pytest

from guard_client.eval._metrics import Confusion, gap, off_by_more_than


def test_counts_pairs_into_the_four_cells() -> None:
    pairs = [(True, True)] * 3 + [(False, True)] + [(True, False)] * 2 + [(False, False)] * 4
    assert Confusion.from_pairs(pairs) == Confusion(tp=3, fp=1, fn=2, tn=4)


def test_mixed_matrix() -> None:
    # tp=3 fp=1 fn=2 tn=4: P = 3/4, R = 3/5, F1 = 6/9, FPR = 1/5, accuracy = 7/10.
    c = Confusion(tp=3, fp=1, fn=2, tn=4)
    assert c.precision == pytest.approx(75.0)
    assert c.recall == pytest.approx(60.0)
    assert c.f1 == pytest.approx(200 / 3)
    assert c.false_positive_rate == pytest.approx(20.0)
    assert c.accuracy == pytest.approx(70.0)
    assert (c.total, c.positives, c.negatives) == (10, 5, 5)


def test_f1_is_harmonic_mean_of_precision_and_recall() -> None:
    c = Confusion(tp=7, fp=5, fn=3, tn=11)
    p, r = 7 / 12, 7 / 10
    assert c.f1 == pytest.approx(100 * 2 * p * r / (p + r))


def test_all_positive_set_scores_2r_over_1_plus_r() -> None:
    # SimpleSafetyTests-style: 100 harmful items, 90 flagged. No negatives, so FPR is undefined.
    c = Confusion.from_pairs([(True, True)] * 90 + [(True, False)] * 10)
    assert c.precision == pytest.approx(100.0)
    assert c.recall == pytest.approx(90.0)
    assert c.f1 == pytest.approx(100 * 2 * 0.9 / 1.9)
    assert c.false_positive_rate is None


def test_all_positive_set_with_nothing_flagged() -> None:
    c = Confusion.from_pairs([(True, False)] * 4)
    assert c.precision is None  # nothing predicted positive
    assert c.recall == 0.0
    assert c.f1 == 0.0


def test_all_negative_set_without_flags_has_no_f1_but_a_zero_fpr() -> None:
    # JailbreakBench benign-style: the positive class is empty.
    c = Confusion.from_pairs([(False, False)] * 5)
    assert c.f1 is None
    assert c.recall is None
    assert c.precision is None
    assert c.false_positive_rate == 0.0
    assert c.accuracy == 100.0


def test_all_negative_set_with_flags_is_pure_false_positives() -> None:
    c = Confusion.from_pairs([(False, True)] * 2 + [(False, False)] * 6)
    assert c.false_positive_rate == pytest.approx(25.0)
    assert c.precision == 0.0
    assert c.f1 == 0.0  # 2TP / (2TP + FP + FN) = 0 / 2
    assert c.recall is None


def test_empty_set_defines_nothing() -> None:
    c = Confusion.from_pairs([])
    assert c == Confusion()
    d = c.as_dict()
    assert {d[k] for k in ("precision", "recall", "f1", "false_positive_rate", "accuracy")} == {None}


def test_perfect_classifier() -> None:
    c = Confusion(tp=4, fp=0, fn=0, tn=6)
    assert (c.precision, c.recall, c.f1, c.false_positive_rate) == (100.0, 100.0, 100.0, 0.0)


def test_as_dict_carries_counts_and_rates() -> None:
    d = Confusion(tp=1, fp=1, fn=0, tn=2).as_dict()
    assert (d["tp"], d["fp"], d["fn"], d["tn"]) == (1, 1, 0, 2)
    assert d["precision"] == pytest.approx(50.0)
    assert d["f1"] == pytest.approx(200 / 3)
    assert d["false_positive_rate"] == pytest.approx(100 / 3)


def test_gap_and_tolerance() -> None:
    assert gap(87.0, 89.7) == pytest.approx(-2.7)
    assert gap(None, 89.7) is None
    assert off_by_more_than(gap(87.0, 89.7))
    assert off_by_more_than(gap(92.5, 90.0))  # better than published is a discrepancy too
    assert not off_by_more_than(gap(88.0, 89.7))
    assert not off_by_more_than(gap(87.7, 89.7))  # exactly 2 points is within tolerance
    assert not off_by_more_than(None)
    assert off_by_more_than(1.5, tolerance=1.0)
