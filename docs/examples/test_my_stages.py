"""The test that goes with docs/examples/my_stages.py (run: pytest docs/examples)."""
from my_stages import DigitRatio


def test_digit_ratio_drops_number_tables_and_keeps_prose():
    scorer = DigitRatio(max_ratio=0.3)
    table = scorer.process({"id": "a", "text": "12 34 56 78 90 11 22", "source": "s"})
    prose = scorer.process({"id": "b", "text": "The quick brown fox, 2 times.", "source": "s"})
    assert table.drop == "too_many_digits" and table.columns["digit_ratio"] > 0.3
    assert prose.drop is None and prose.columns["digit_ratio"] < 0.1
