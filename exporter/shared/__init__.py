"""Services several commands use: run directories, run summaries, wire decoding, parquet, paths, staging, the Hub client, tables."""
