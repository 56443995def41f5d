import pytest

from pairs_assets.errors import UniverseError
from pairs_assets.settings import EMBEDDED_UNIVERSE_FILE
from pairs_assets.universe import load_universe


def test_default_universe_matches_the_design():
    uni = load_universe(EMBEDDED_UNIVERSE_FILE)
    assert uni.sectors == {
        "consumer": ("BBY", "HD", "KO", "PEP", "PG", "WMT"),
        "energy": ("CVX", "RRC", "XOM"),
        "financial": ("BAC", "JPM"),
        "healthcare": ("JNJ", "LLY", "MRK", "PFE", "UNH"),
        "industrial": ("GE",),
        "technology": ("AAPL", "AMD", "MSFT"),
    }
    assert uni.sector_of("KO") == "consumer"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("sectors: [", "not valid YAML"),
        ("- a\n- b\n", "top-level 'sectors'"),
        ("sectors: {}\n", "non-empty mapping"),
        ("sectors:\n  Tech: [AAPL]\n", "sector name 'Tech'"),
        ("sectors:\n  tech: AAPL\n", "sectors.tech must be a non-empty list"),
        ("sectors:\n  tech: [aapl]\n", "invalid symbol 'aapl'"),
        ("sectors:\n  tech: [AAPL]\n  other: [AAPL]\n", "AAPL is listed in both"),
    ],
)
def test_malformed_universe_names_the_field(tmp_path, text, expected):
    path = tmp_path / "universe.yaml"
    path.write_text(text)
    with pytest.raises(UniverseError, match=expected):
        load_universe(path)


def test_missing_universe_file_is_named(tmp_path):
    with pytest.raises(UniverseError, match="cannot read universe file .*nope.yaml"):
        load_universe(tmp_path / "nope.yaml")
