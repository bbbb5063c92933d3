"""Where the suite's real data lives: the AVE metadata shipped with the package, test-only files here."""
from pathlib import Path

from avepipe.data.ave_metadata import AVE_METADATA_DIR

AVE_DIR = AVE_METADATA_DIR
TEST_DATA_DIR = Path(__file__).resolve().parent / "data"
