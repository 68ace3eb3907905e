import pytest

from evalkit.benchmark import bandwidth, measure


class _FixedClock:
    """Every timed copy takes 10 ms."""

    def __init__(self, device_type: str) -> None:
        self.t = 0.0

    def now(self) -> float:
        self.t += 0.01
        return self.t

    def seconds(self, start: float, end: float) -> float:
        return end - start


def test_attained_bandwidth_counts_the_read_and_the_write(monkeypatch):
    monkeypatch.setattr(measure, "Clock", _FixedClock)
    got = bandwidth.copy_bandwidth("cpu", nbytes=1 << 20, repeats=4, warmup=1)
    assert got.gbps == pytest.approx(2 * (1 << 20) / 0.01 / 1e9)
    assert got.low_gbps == pytest.approx(got.gbps) and got.high_gbps == pytest.approx(got.gbps)
    assert (got.nbytes, got.repeats) == (1 << 20, 4)
    assert "1 MiB" in got.method and "2x bytes moved" in got.method


def test_a_real_copy_on_this_cpu_gives_an_ordered_finite_rate():
    got = bandwidth.copy_bandwidth("cpu", nbytes=4 << 20, repeats=3, warmup=1)
    assert 0 < got.low_gbps <= got.gbps <= got.high_gbps < 1e5


@pytest.mark.parametrize("repeats, warmup", [(0, 1), (3, -1)])
def test_bad_counts_are_refused(repeats, warmup):
    with pytest.raises(ValueError, match="repeats"):
        bandwidth.copy_bandwidth("cpu", nbytes=1 << 10, repeats=repeats, warmup=warmup)
