"""Where the real AVE metadata lives: ``shared/ave`` beside the repository (as in CI)."""
from pathlib import Path

AVE_DIR = Path(__file__).resolve().parents[2] / "shared" / "ave"
