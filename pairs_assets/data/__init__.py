"""The embedded dataset: skfolio's S&P 500 daily closes and their sector universe (ATTRIBUTION.md).

Plain constants below every layer, so that the embedded bar source (``resources``), the settings and
the calendar name the same files and dates without importing one another.
"""

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
EMBEDDED_BARS_FILE = DATA_DIR / "sp500_dataset.csv.gz"
EMBEDDED_UNIVERSE_FILE = DATA_DIR / "universe.yaml"
EMBEDDED_SOURCE = "embedded:skfolio-sp500"
#: The dataset's first and last sessions.
EMBEDDED_HISTORY_START = "1990-01-02"
EMBEDDED_LAST_SESSION = "2022-12-28"
