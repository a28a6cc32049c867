"""Export stage 1 (stage.py): runs → staged dataset folders (captures parquet, traces, cards, rollouts)."""
